use std::time::Instant;
use tch::{Device, Kind, Tensor};
fn main() {
    tch::set_num_threads(2);
    println!("cuda: {}", tch::Cuda::is_available());
    let x = Tensor::randn([128, 784], (Kind::Float, Device::Cpu));
    let w = Tensor::randn([300, 784], (Kind::Float, Device::Cpu));
    let m = Tensor::rand([300, 784], (Kind::Float, Device::Cpu))
        .lt(0.02)
        .to_kind(Kind::Float);
    let we = &w * &m;
    for _ in 0..10 {
        let _ = x.matmul(&we.tr());
    }
    let t = Instant::now();
    for _ in 0..200 {
        let _ = x.matmul(&we.tr());
    }
    println!("dense fwd: {:?}", t.elapsed() / 200);
    let t = Instant::now();
    for _ in 0..200 {
        let _ = we.to_sparse_csr(None);
    }
    println!("to_csr: {:?}", t.elapsed() / 200);
    let csr = we.to_sparse_csr(None);
    let xt = x.tr().contiguous();
    for _ in 0..10 {
        let _ = csr.matmul(&xt);
    }
    let t = Instant::now();
    for _ in 0..200 {
        let _ = csr.matmul(&xt);
    }
    println!("csr mm: {:?}", t.elapsed() / 200);
    let g = Tensor::randn([128, 300], (Kind::Float, Device::Cpu));
    let t = Instant::now();
    for _ in 0..200 {
        let _ = g.tr().matmul(&x);
    }
    println!("wgrad: {:?}", t.elapsed() / 200);
    let t = Instant::now();
    for _ in 0..200 {
        let _ = &w * &m;
    }
    println!("elementwise mul: {:?}", t.elapsed() / 200);
}
