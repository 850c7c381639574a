//! The execution plan of a network: which tensor each layer reads and the shape of every
//! tensor, worked out (and validated) once at load time by [`crate::validate::specs`].

/// Shape of one example's tensor: channels, height, width (a flat vector is `n x 1 x 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Shape {
    /// Values per example.
    pub(crate) fn len(self) -> usize {
        self.c * self.h * self.w
    }

    /// A flat vector of `n` values.
    pub(crate) fn flat(n: usize) -> Shape {
        Shape { c: n, h: 1, w: 1 }
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.c, self.h, self.w)
    }
}

/// One layer's place in the graph. Tensor slots: 0 is the network input, `i + 1` the output
/// of layer `i`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    /// Slots read (one, or two for `add`).
    pub inputs: Vec<usize>,
    /// Shape of the (first) input.
    pub in_shape: Shape,
    /// Shape of the output.
    pub out: Shape,
}

/// The whole network's plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Shape of the network input.
    pub input: Shape,
    /// One node per layer, in execution order.
    pub nodes: Vec<Node>,
    /// True when the network is a plain chain of linear layers (the MLP fast paths apply).
    pub mlp_chain: bool,
}

/// Geometry of a 2-D window sweep (convolution or pooling) over one input plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geom {
    /// Input channels, height, width.
    pub c: usize,
    pub h: usize,
    pub w: usize,
    /// Window.
    pub kh: usize,
    pub kw: usize,
    /// Stride.
    pub sh: usize,
    pub sw: usize,
    /// Padding.
    pub ph: usize,
    pub pw: usize,
    /// Dilation (spacing of the window taps; 1 for pooling).
    pub dh: usize,
    pub dw: usize,
    /// Channel groups of a convolution (1 for pooling): output channel `o` of `out` reads
    /// input channels `(o / (out/groups))·(c/groups) ..` of the next `c/groups`.
    pub groups: usize,
    /// Output height and width.
    pub ho: usize,
    pub wo: usize,
}

impl Geom {
    /// The geometry of a (pooling) window over `input`: [`Geom::conv`] without dilation or
    /// groups.
    pub(crate) fn new(
        input: Shape,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Result<Geom, String> {
        Geom::conv(input, kernel, stride, padding, [1, 1], 1)
    }

    /// The geometry of a convolution window over `input`, or an error naming the problem
    /// (zero window, stride or dilation, groups that do not divide the channels, an output
    /// that collapses to nothing, overflow).
    pub(crate) fn conv(
        input: Shape,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
        groups: usize,
    ) -> Result<Geom, String> {
        if kernel[0] == 0 || kernel[1] == 0 {
            return Err(format!("kernel {kernel:?} has a zero size"));
        }
        if stride[0] == 0 || stride[1] == 0 {
            return Err(format!("stride {stride:?} has a zero step (must be >= 1)"));
        }
        if dilation[0] == 0 || dilation[1] == 0 {
            return Err(format!(
                "dilation {dilation:?} has a zero step (must be >= 1)"
            ));
        }
        if groups == 0 || !input.c.is_multiple_of(groups) {
            return Err(format!(
                "groups {groups} does not divide the {} input channels",
                input.c
            ));
        }
        let out = |size: usize, k: usize, s: usize, p: usize, d: usize, axis: &str| {
            let padded = p
                .checked_mul(2)
                .and_then(|p2| size.checked_add(p2))
                .ok_or_else(|| format!("padding {p} overflows"))?;
            // the window's extent: d·(k − 1) + 1
            let extent = (k - 1)
                .checked_mul(d)
                .and_then(|e| e.checked_add(1))
                .ok_or_else(|| format!("kernel {k} with dilation {d} overflows"))?;
            if padded < extent {
                return Err(if d == 1 {
                    format!(
                        "output {axis} collapses to 0: input {axis} {size} + 2·padding {p} is smaller than the kernel {k}"
                    )
                } else {
                    format!(
                        "output {axis} collapses to 0: input {axis} {size} + 2·padding {p} is smaller than the dilated kernel {extent} (kernel {k}, dilation {d})"
                    )
                });
            }
            Ok((padded - extent) / s + 1)
        };
        let ho = out(
            input.h,
            kernel[0],
            stride[0],
            padding[0],
            dilation[0],
            "height",
        )?;
        let wo = out(
            input.w,
            kernel[1],
            stride[1],
            padding[1],
            dilation[1],
            "width",
        )?;
        Ok(Geom {
            c: input.c,
            h: input.h,
            w: input.w,
            kh: kernel[0],
            kw: kernel[1],
            sh: stride[0],
            sw: stride[1],
            ph: padding[0],
            pw: padding[1],
            dh: dilation[0],
            dw: dilation[1],
            groups,
            ho,
            wo,
        })
    }

    /// Input channels per group.
    #[inline(always)]
    pub(crate) fn cg(&self) -> usize {
        self.c / self.groups
    }

    /// Output positions `lo..hi` along one axis whose input coordinate
    /// `o·stride + d − pad` lies in `0..size` (`d` = tap offset, i.e. tap · dilation).
    #[inline(always)]
    pub(crate) fn valid_range(
        out: usize,
        size: usize,
        stride: usize,
        pad: usize,
        d: usize,
    ) -> (usize, usize) {
        // o·s + d >= pad  and  o·s + d − pad <= size − 1
        let lo = pad.saturating_sub(d).div_ceil(stride);
        let hi = if size + pad > d {
            ((size + pad - d - 1) / stride + 1).min(out)
        } else {
            0
        };
        (lo.min(hi), hi)
    }
}
