//! Reader of NumPy `.npy` files (format versions 1.0, 2.0 and 3.0: little-endian, C order) and
//! of `npy:DIR` datasets.
//!
//! A small reader of the documented format rather than a crate: the maintained ones
//! (`npyz`, `ndarray-npy`) parse the header with a general Python-literal parser (`py_literal`,
//! built on `pest`), which is more than this needs, and they do not stream into the two storage
//! types used here or report problems in the one-line form the CLI prints. The header is a
//! Python dict literal with the keys `descr`, `fortran_order` and `shape`; the data follows it.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::dataset::Pixels;
use crate::{DataError, Split};

/// Magic bytes every `.npy` file starts with.
pub(crate) const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Largest header accepted (numpy's own are a few hundred bytes).
const MAX_HEADER: usize = 1 << 20;
/// Largest number of classes an npy dataset may have (labels up to 2^20 − 1).
pub(crate) const MAX_CLASSES: usize = 1 << 20;
/// Values converted per read.
const CHUNK: usize = 1 << 16;

/// File names `(x, y)` of a split.
pub(crate) fn file_names(split: Split) -> (&'static str, &'static str) {
    match split {
        Split::Train => ("train_x.npy", "train_y.npy"),
        Split::Test => ("test_x.npy", "test_y.npy"),
    }
}

/// What to do when a file is missing.
pub(crate) const MISSING_HINT: &str = "an npy dataset directory holds train_x.npy, train_y.npy, test_x.npy and test_y.npy (written with numpy.save); pass --dataset npy:DIR";

/// Element types of `.npy` files that hyperflux can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dtype {
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F32,
    F64,
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::U8 | Dtype::I8 => 1,
            Dtype::U16 | Dtype::I16 => 2,
            Dtype::U32 | Dtype::I32 | Dtype::F32 => 4,
            Dtype::U64 | Dtype::I64 | Dtype::F64 => 8,
        }
    }

    /// numpy's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Dtype::U8 => "uint8",
            Dtype::U16 => "uint16",
            Dtype::U32 => "uint32",
            Dtype::U64 => "uint64",
            Dtype::I8 => "int8",
            Dtype::I16 => "int16",
            Dtype::I32 => "int32",
            Dtype::I64 => "int64",
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
        }
    }

    fn is_float(self) -> bool {
        matches!(self, Dtype::F32 | Dtype::F64)
    }
}

/// A parsed `.npy` header and the open file, positioned at the first data byte.
pub(crate) struct Header {
    pub(crate) descr: String,
    pub(crate) dtype: Option<Dtype>,
    pub(crate) shape: Vec<usize>,
    file: File,
}

/// `(3, 28, 28)`-style text of a shape, as numpy prints it.
pub(crate) fn shape_text(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> DataError {
    DataError::NpyCorrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn unsupported(path: &Path, reason: impl Into<String>) -> DataError {
    DataError::NpyUnsupported {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Opens `path`, checks the magic, parses the header and the data size.
pub(crate) fn open(path: &Path) -> Result<Header, DataError> {
    let io_err = |source: io::Error| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(DataError::NotFound {
                dataset: "npy",
                path: path.to_path_buf(),
                tried_gz: false,
                hint: MISSING_HINT.into(),
            })
        }
        Err(source) => return Err(io_err(source)),
    };
    let file_len = file.metadata().map_err(io_err)?.len();
    let mut pre = [0u8; 12];
    let got = read_up_to(&mut file, &mut pre).map_err(io_err)?;
    if got < MAGIC.len() || &pre[..6] != MAGIC {
        return Err(DataError::NotNpy {
            path: path.to_path_buf(),
        });
    }
    let (major, minor) = (pre.get(6).copied(), pre.get(7).copied());
    let (header_len, prefix) = match major {
        Some(1) if got >= 10 => (u16::from_le_bytes([pre[8], pre[9]]) as usize, 10),
        Some(2 | 3) if got >= 12 => (
            u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]]) as usize,
            12,
        ),
        Some(v @ 1..=3) => {
            return Err(corrupt(
                path,
                format!("the file ends inside its format {v}.0 preamble ({got} bytes)"),
            ))
        }
        Some(v) => {
            return Err(unsupported(
                path,
                format!(
                    ".npy format version {v}.{} is not supported (1.0, 2.0 and 3.0 are); write it with numpy.save",
                    minor.unwrap_or(0)
                ),
            ))
        }
        None => {
            return Err(corrupt(path, "the file ends inside its .npy preamble"));
        }
    };
    if header_len > MAX_HEADER {
        return Err(corrupt(
            path,
            format!("header length {header_len} is implausible (numpy writes a few hundred bytes)"),
        ));
    }
    let data_start = (prefix + header_len) as u64;
    if file_len < data_start {
        return Err(corrupt(
            path,
            format!(
                "the header says it is {header_len} bytes long but the file has only {file_len} bytes"
            ),
        ));
    }
    // The 12 bytes read may already include the start of the header (format 1.0).
    let mut header = pre[prefix..got].to_vec();
    let rest = header_len.saturating_sub(header.len());
    header.truncate(header_len);
    let mut more = vec![0u8; rest];
    file.read_exact(&mut more).map_err(io_err)?;
    header.extend_from_slice(&more);
    if header_len < got - prefix {
        // A 1.0 header shorter than 2 bytes: position the file right after it.
        use std::io::{Seek, SeekFrom};
        file.seek(SeekFrom::Start(data_start)).map_err(io_err)?;
    }
    let text = String::from_utf8_lossy(&header);
    let dict = parse_dict(&text).map_err(|e| corrupt(path, format!("bad .npy header ({e})")))?;
    let field = |key: &str| {
        dict.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .ok_or_else(|| corrupt(path, format!("the .npy header has no '{key}'")))
    };
    let descr = match field("descr")? {
        Lit::Str(s) => s.clone(),
        Lit::List(_) => {
            return Err(unsupported(
                path,
                "holds a structured (record) array; save a plain numeric array instead",
            ))
        }
        _ => return Err(corrupt(path, "the .npy header's 'descr' is not a string")),
    };
    let fortran = match field("fortran_order")? {
        Lit::Bool(b) => *b,
        _ => {
            return Err(corrupt(
                path,
                "the .npy header's 'fortran_order' is not True/False",
            ))
        }
    };
    let shape = match field("shape")? {
        Lit::Tuple(items) => items
            .iter()
            .map(|v| match v {
                Lit::Int(n) => usize::try_from(*n).ok(),
                _ => None,
            })
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| corrupt(path, "the .npy header's 'shape' is not a tuple of sizes"))?,
        _ => return Err(corrupt(path, "the .npy header's 'shape' is not a tuple")),
    };
    if fortran && shape.iter().filter(|&&d| d > 1).count() > 1 {
        return Err(unsupported(
            path,
            "is stored in Fortran (column-major) order; save it in C order: numpy.save(path, numpy.ascontiguousarray(a))",
        ));
    }
    let dtype = parse_descr(path, &descr)?;
    if let Some(dt) = dtype {
        let count = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64));
        let expected = count.and_then(|c| c.checked_mul(dt.size() as u64));
        let actual = file_len - data_start;
        match expected {
            Some(e) if e == actual => {}
            Some(e) if e > actual => {
                return Err(corrupt(
                    path,
                    format!(
                        "truncated: the header says shape {} of {} = {e} data bytes but the file holds {actual}",
                        shape_text(&shape),
                        dt.name()
                    ),
                ))
            }
            Some(e) => {
                return Err(corrupt(
                    path,
                    format!(
                        "{} bytes after the data that the header describes (shape {} of {} = {e} bytes)",
                        actual - e,
                        shape_text(&shape),
                        dt.name()
                    ),
                ))
            }
            None => {
                return Err(corrupt(
                    path,
                    format!("shape {} is too large", shape_text(&shape)),
                ))
            }
        }
    }
    Ok(Header {
        descr,
        dtype,
        shape,
        file,
    })
}

/// Reads until `buf` is full or the file ends; returns the number of bytes read.
fn read_up_to(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The element type of a `descr` such as `'<f4'` or `'|u1'`; `None` for a well-formed but
/// unreadable type (complex, strings, objects, dates…), which the callers refuse with their own
/// advice. Big-endian multi-byte types are refused here.
fn parse_descr(path: &Path, descr: &str) -> Result<Option<Dtype>, DataError> {
    let b = descr.as_bytes();
    if b.len() < 2 {
        return Ok(None);
    }
    let (order, rest) = match b[0] {
        b'<' | b'>' | b'|' | b'=' => (b[0], &descr[1..]),
        _ => (b'=', descr),
    };
    let dtype = match rest {
        "u1" | "B" => Dtype::U8,
        "u2" => Dtype::U16,
        "u4" => Dtype::U32,
        "u8" => Dtype::U64,
        "i1" | "b" => Dtype::I8,
        "i2" => Dtype::I16,
        "i4" => Dtype::I32,
        "i8" => Dtype::I64,
        "f4" => Dtype::F32,
        "f8" => Dtype::F64,
        _ => return Ok(None),
    };
    // '=' is "native": numpy writes '<' or '>' instead; read it as little-endian, the byte order
    // of every machine this runs on.
    if order == b'>' && dtype.size() > 1 {
        return Err(unsupported(
            path,
            format!(
                "holds big-endian data ('{descr}'), which is not supported; save it little-endian: numpy.save(path, a.astype(a.dtype.newbyteorder('<')))"
            ),
        ));
    }
    Ok(Some(dtype))
}

/// Reads `n` values of `dtype` from the file, converting each with `f` (value index, raw
/// little-endian bytes) into `out`.
fn read_values<T>(
    path: &Path,
    file: &mut File,
    dtype: Dtype,
    n: usize,
    out: &mut Vec<T>,
    mut f: impl FnMut(usize, &[u8]) -> Result<T, DataError>,
) -> Result<(), DataError> {
    let size = dtype.size();
    let mut buf = vec![0u8; CHUNK * size];
    let mut done = 0;
    while done < n {
        let k = CHUNK.min(n - done);
        let bytes = &mut buf[..k * size];
        file.read_exact(bytes).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        for (j, v) in bytes.chunks_exact(size).enumerate() {
            out.push(f(done + j, v)?);
        }
        done += k;
    }
    Ok(())
}

fn f32_of(v: &[u8]) -> f32 {
    f32::from_le_bytes([v[0], v[1], v[2], v[3]])
}

fn f64_of(v: &[u8]) -> f64 {
    f64::from_le_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]])
}

/// Example shape `(C, H, W)`.
pub(crate) type Chw = (usize, usize, usize);

/// Opens an inputs file and checks its dtype (float32, float64 or uint8).
fn open_inputs(path: &Path) -> Result<(Header, Dtype), DataError> {
    let h = open(path)?;
    match h
        .dtype
        .filter(|d| matches!(d, Dtype::U8 | Dtype::F32 | Dtype::F64))
    {
        Some(d) => Ok((h, d)),
        None => Err(unsupported(
            path,
            format!(
                "inputs of dtype '{}'{} are not supported; save x as float32 or uint8: numpy.save(path, x.astype(numpy.float32))",
                h.descr,
                h.dtype.map(|d| format!(" ({})", d.name())).unwrap_or_default()
            ),
        )),
    }
}

/// Reads the values of an inputs file whose header `h` was checked by [`open_inputs`]; NaN and
/// infinities are refused, naming the example (first dimension) and the position within it.
fn read_inputs(path: &Path, mut h: Header, dtype: Dtype) -> Result<Pixels, DataError> {
    let count: usize = h.shape.iter().product();
    let per = h
        .shape
        .get(1..)
        .map_or(1, |r| r.iter().product::<usize>())
        .max(1);
    let non_finite = |i: usize, value: f64| DataError::NonFinite {
        path: path.to_path_buf(),
        example: i / per,
        position: i % per,
        value: if value.is_finite() {
            format!("{value:e}")
        } else {
            value.to_string()
        },
    };
    Ok(match dtype {
        Dtype::U8 => {
            let mut v = vec![0u8; count];
            h.file.read_exact(&mut v).map_err(|source| DataError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            Pixels::U8(v)
        }
        Dtype::F32 => {
            let mut v = Vec::with_capacity(count);
            read_values(path, &mut h.file, dtype, count, &mut v, |i, b| {
                let x = f32_of(b);
                if x.is_finite() {
                    Ok(x)
                } else {
                    Err(non_finite(i, x as f64))
                }
            })?;
            Pixels::F32(v)
        }
        _ => {
            let mut v = Vec::with_capacity(count);
            read_values(path, &mut h.file, dtype, count, &mut v, |i, b| {
                let x = f64_of(b);
                let y = x as f32;
                if y.is_finite() {
                    Ok(y)
                } else {
                    Err(non_finite(i, x))
                }
            })?;
            Pixels::F32(v)
        }
    })
}

/// Reads a `.npy` array of any shape holding float32, float64 (converted to float32) or uint8
/// values, e.g. inputs to predict: `(shape, values)`. Every problem (missing or truncated file,
/// unsupported dtype or layout, NaN or infinite values) is a one-line [`DataError`] naming the
/// file.
pub fn read_npy(path: &Path) -> Result<(Vec<usize>, Pixels), DataError> {
    let (h, dtype) = open_inputs(path)?;
    let shape = h.shape.clone();
    Ok((shape, read_inputs(path, h, dtype)?))
}

/// The inputs of one split: `(example shape, number of examples, values)`. Accepts float32,
/// float64 (converted to float32) and uint8 arrays of shape `N×C×H×W` or `N×D` (read as
/// `D×1×1`).
pub(crate) fn read_x(path: &Path) -> Result<(Chw, usize, Pixels), DataError> {
    let (h, dtype) = open_inputs(path)?;
    let (n, shape) = match h.shape[..] {
        [n, c, hh, w] => (n, (c, hh, w)),
        [n, d] => (n, (d, 1, 1)),
        _ => {
            let hint = match h.shape[..] {
                [n, a, b] => {
                    format!("; for single-channel images reshape it to ({n}, 1, {a}, {b})")
                }
                _ => String::new(),
            };
            return Err(unsupported(
                path,
                format!(
                    "inputs of shape {} are not supported: expected N×C×H×W or N×D{hint}",
                    shape_text(&h.shape)
                ),
            ));
        }
    };
    if n == 0 {
        return Err(DataError::EmptySplit {
            path: path.to_path_buf(),
            shape: shape_text(&h.shape),
        });
    }
    if shape.0 * shape.1 * shape.2 == 0 {
        return Err(unsupported(
            path,
            format!(
                "examples of shape {} hold no values",
                shape_text(&h.shape[1..])
            ),
        ));
    }
    Ok((shape, n, read_inputs(path, h, dtype)?))
}

/// The labels of one split (shape `(N,)` or `(N, 1)`, any integer dtype), not yet range-checked.
pub(crate) fn read_y(path: &Path) -> Result<Vec<i64>, DataError> {
    let mut h = open(path)?;
    let Some(dtype) = h.dtype.filter(|d| !d.is_float()) else {
        return Err(unsupported(
            path,
            format!(
                "labels of dtype '{}'{} are not supported; labels are class indices: numpy.save(path, y.astype(numpy.int64))",
                h.descr,
                h.dtype.map(|d| format!(" ({})", d.name())).unwrap_or_default()
            ),
        ));
    };
    let n = match h.shape[..] {
        [n] | [n, 1] => n,
        _ => {
            return Err(unsupported(
                path,
                format!(
                    "labels of shape {} are not supported: expected (N,) class indices",
                    shape_text(&h.shape)
                ),
            ))
        }
    };
    if n == 0 {
        return Err(DataError::EmptySplit {
            path: path.to_path_buf(),
            shape: shape_text(&h.shape),
        });
    }
    let mut out = Vec::with_capacity(n);
    read_values(path, &mut h.file, dtype, n, &mut out, |i, b| {
        Ok(match dtype {
            Dtype::U8 => b[0] as i64,
            Dtype::I8 => b[0] as i8 as i64,
            Dtype::U16 => u16::from_le_bytes([b[0], b[1]]) as i64,
            Dtype::I16 => i16::from_le_bytes([b[0], b[1]]) as i64,
            Dtype::U32 => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
            Dtype::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
            Dtype::I64 => i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            _ => {
                let v = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                i64::try_from(v).map_err(|_| DataError::BadLabel {
                    path: path.to_path_buf(),
                    index: i,
                    label: v.to_string(),
                    problem: format!(
                        "is too large (more than {MAX_CLASSES} classes are not supported)"
                    ),
                })?
            }
        })
    })?;
    Ok(out)
}

/// One split as read from disk, before the classes are known.
pub(crate) struct RawSplit {
    pub(crate) x_path: PathBuf,
    pub(crate) y_path: PathBuf,
    pub(crate) shape: Chw,
    pub(crate) pixels: Pixels,
    pub(crate) labels: Vec<i64>,
}

/// Reads `DIR/{split}_x.npy` and `DIR/{split}_y.npy` and checks that they agree on N and that
/// no label is negative.
pub(crate) fn read_split(dir: &Path, split: Split) -> Result<RawSplit, DataError> {
    let (xn, yn) = file_names(split);
    let (x_path, y_path) = (dir.join(xn), dir.join(yn));
    // Both files must exist before anything large is read.
    for p in [&x_path, &y_path] {
        if !p.exists() {
            open(p)?;
        }
    }
    let (shape, n, pixels) = read_x(&x_path)?;
    let labels = read_y(&y_path)?;
    if labels.len() != n {
        return Err(DataError::NpyCountMismatch {
            images_path: x_path,
            images: n,
            labels_path: y_path,
            labels: labels.len(),
        });
    }
    if let Some(i) = labels.iter().position(|&l| l < 0) {
        return Err(DataError::BadLabel {
            path: y_path,
            index: i,
            label: labels[i].to_string(),
            problem: "is negative; labels must be class indices 0..K-1".into(),
        });
    }
    Ok(RawSplit {
        x_path,
        y_path,
        shape,
        pixels,
        labels,
    })
}

/// Checks every label against `classes` and converts them.
pub(crate) fn check_labels(
    split: &RawSplit,
    classes: usize,
    from_model: bool,
) -> Result<Vec<u32>, DataError> {
    if let Some(i) = split
        .labels
        .iter()
        .position(|&l| l as u64 >= classes as u64)
    {
        let l = split.labels[i];
        let problem = if from_model {
            format!("is not below the model's {classes} classes; use data whose labels are 0..{} or a model with more outputs", classes.saturating_sub(1))
        } else {
            format!("is too large (more than {MAX_CLASSES} classes are not supported)")
        };
        return Err(DataError::BadLabel {
            path: split.y_path.clone(),
            index: i,
            label: l.to_string(),
            problem,
        });
    }
    Ok(split.labels.iter().map(|&l| l as u32).collect())
}

/// A Python literal of the kinds found in `.npy` headers.
#[derive(Debug, PartialEq)]
enum Lit {
    Str(String),
    Int(u64),
    Bool(bool),
    None,
    Tuple(Vec<Lit>),
    List(Vec<Lit>),
    Dict(Vec<(String, Lit)>),
}

/// Parses a header: one dict literal with string keys, then only whitespace.
fn parse_dict(text: &str) -> Result<Vec<(String, Lit)>, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        depth: 0,
    };
    let v = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("unexpected text after the dict at byte {}", p.i));
    }
    match v {
        Lit::Dict(d) => Ok(d),
        _ => Err("the header is not a dict".into()),
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.i))
        }
    }

    fn value(&mut self) -> Result<Lit, String> {
        if self.depth > 16 {
            return Err("nested too deeply".into());
        }
        match self.peek() {
            Some(q @ (b'\'' | b'"')) => self.string(q).map(Lit::Str),
            Some(b'(') => self.seq(b')').map(Lit::Tuple),
            Some(b'[') => self.seq(b']').map(Lit::List),
            Some(b'{') => self.dict(),
            Some(c) if c.is_ascii_digit() => {
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                    self.i += 1;
                }
                let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                // Python 2 long suffix, as in old files: (3L, 4L).
                if self.s.get(self.i) == Some(&b'L') {
                    self.i += 1;
                }
                digits
                    .parse()
                    .map(Lit::Int)
                    .map_err(|_| format!("number {digits} is too large"))
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i].is_ascii_alphanumeric() {
                    self.i += 1;
                }
                match &self.s[start..self.i] {
                    b"True" => Ok(Lit::Bool(true)),
                    b"False" => Ok(Lit::Bool(false)),
                    b"None" => Ok(Lit::None),
                    w => Err(format!("unexpected word '{}'", String::from_utf8_lossy(w))),
                }
            }
            Some(c) => Err(format!("unexpected '{}' at byte {}", c as char, self.i)),
            None => Err("the header ends early".into()),
        }
    }

    fn string(&mut self, quote: u8) -> Result<String, String> {
        self.i += 1;
        let mut out = Vec::new();
        while let Some(&c) = self.s.get(self.i) {
            self.i += 1;
            match c {
                b'\\' => {
                    if let Some(&e) = self.s.get(self.i) {
                        out.push(e);
                        self.i += 1;
                    }
                }
                c if c == quote => return Ok(String::from_utf8_lossy(&out).into_owned()),
                c => out.push(c),
            }
        }
        Err("unterminated string".into())
    }

    fn seq(&mut self, close: u8) -> Result<Vec<Lit>, String> {
        self.i += 1;
        self.depth += 1;
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(close) {
                self.i += 1;
                break;
            }
            items.push(self.value()?);
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(c) if c == close => {}
                _ => {
                    return Err(format!(
                        "expected ',' or '{}' at byte {}",
                        close as char, self.i
                    ))
                }
            }
        }
        self.depth -= 1;
        Ok(items)
    }

    fn dict(&mut self) -> Result<Lit, String> {
        self.i += 1;
        self.depth += 1;
        let mut items = Vec::new();
        loop {
            match self.peek() {
                Some(b'}') => {
                    self.i += 1;
                    break;
                }
                Some(q @ (b'\'' | b'"')) => {
                    let k = self.string(q)?;
                    self.expect(b':')?;
                    let v = self.value()?;
                    items.push((k, v));
                }
                _ => return Err(format!("expected a quoted key at byte {}", self.i)),
            }
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {}
                _ => return Err(format!("expected ',' or '}}' at byte {}", self.i)),
            }
        }
        self.depth -= 1;
        Ok(Lit::Dict(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_dicts() {
        let d = parse_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }    \n")
            .unwrap();
        assert_eq!(d[0], ("descr".into(), Lit::Str("<f4".into())));
        assert_eq!(d[1], ("fortran_order".into(), Lit::Bool(false)));
        assert_eq!(
            d[2],
            ("shape".into(), Lit::Tuple(vec![Lit::Int(3), Lit::Int(4)]))
        );
        let d = parse_dict("{\"shape\": (5L,), \"descr\": [('a', '<i4')]}").unwrap();
        assert_eq!(d[0].1, Lit::Tuple(vec![Lit::Int(5)]));
        assert!(matches!(d[1].1, Lit::List(_)));
        assert_eq!(
            parse_dict("{'shape': ()}").unwrap()[0].1,
            Lit::Tuple(vec![])
        );
        for bad in [
            "",
            "{",
            "{'a' 1}",
            "{'a': 1",
            "{'a': (1, 2}",
            "[1]",
            "{'a': 1} x",
            "{'a': 'b}",
            "{'a': Maybe}",
            "{'a': 99999999999999999999999}",
        ] {
            assert!(parse_dict(bad).is_err(), "{bad:?} should fail");
        }
        let deep = format!("{{'a': {}{}}}", "(".repeat(40), ")".repeat(40));
        assert!(parse_dict(&deep).unwrap_err().contains("deeply"));
    }

    #[test]
    fn descr_names() {
        let p = Path::new("x.npy");
        assert_eq!(parse_descr(p, "<f4").unwrap(), Some(Dtype::F32));
        assert_eq!(parse_descr(p, "|u1").unwrap(), Some(Dtype::U8));
        assert_eq!(parse_descr(p, ">u1").unwrap(), Some(Dtype::U8));
        assert_eq!(parse_descr(p, "<i8").unwrap(), Some(Dtype::I64));
        assert_eq!(parse_descr(p, "<c8").unwrap(), None);
        assert_eq!(parse_descr(p, "<U5").unwrap(), None);
        assert_eq!(parse_descr(p, "|O").unwrap(), None);
        let e = parse_descr(p, ">f4").unwrap_err().to_string();
        assert!(e.contains("big-endian") && e.contains("x.npy"), "{e}");
    }
}
