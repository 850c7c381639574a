//! Reading and writing pruning-law CSV files.
//!
//! Column conventions (matched case-insensitively, surrounding spaces ignored), taken from the
//! authors' published files:
//! - `Saliency` (required): the saliency threshold γ of the point;
//! - `Remaining` (required): density in percent of prunable weights;
//! - `Accuracy` (optional): test accuracy in percent;
//! - `Epoch` or `Epochs` (optional): the authors' L0 files say `Epochs`, their IMP files `Epoch`;
//! - any other column whose every non-empty cell is a number goes to [`LawPoint::extras`];
//!   a column with a non-numeric cell is ignored and reported in [`LawCsv::ignored_columns`].

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;

use crate::LawError;

/// One measurement on a pruning trajectory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LawPoint {
    /// Epoch at which the point was recorded, if known.
    pub epoch: Option<f64>,
    /// Saliency threshold γ the surviving weights withstood (pressure, magnitude, Taylor score).
    pub saliency: f64,
    /// Density: percentage of prunable weights still present.
    pub remaining: f64,
    /// Test accuracy in percent, if known.
    pub accuracy: Option<f64>,
    /// Other numeric columns, in file order, by column name.
    pub extras: Vec<(String, f64)>,
}

/// How [`read_law_csv_with`] treats questionable rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Drop rows whose Saliency or Remaining is `<= 0` (reported in [`LawCsv::dropped`])
    /// instead of failing. Such points have no logarithm, so they can never be fitted.
    pub skip_nonpositive: bool,
}

/// A row left out by [`ReadOptions::skip_nonpositive`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DroppedRow {
    /// 1-based data row (the header is not counted).
    pub row: usize,
    /// Physical line in the file (the header is line 1).
    pub line: u64,
    /// The row's saliency.
    pub saliency: f64,
    /// The row's density.
    pub remaining: f64,
}

impl fmt::Display for DroppedRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (col, v) = if self.saliency <= 0.0 {
            ("Saliency", self.saliency)
        } else {
            ("Remaining", self.remaining)
        };
        write!(
            f,
            "dropped data row {} (line {}): {col} = {v} is not positive",
            self.row, self.line
        )
    }
}

/// Everything [`read_law_csv_with`] learned about a file.
#[derive(Debug, Clone, PartialEq)]
pub struct LawCsv {
    /// The usable points, in file order.
    pub points: Vec<LawPoint>,
    /// Rows dropped because Saliency or Remaining was `<= 0` (only with `skip_nonpositive`).
    pub dropped: Vec<DroppedRow>,
    /// Extra columns left out because they hold non-numeric cells.
    pub ignored_columns: Vec<String>,
}

/// Minimum number of usable points a law file must have.
pub const MIN_POINTS: usize = 3;

/// Reads a law CSV, failing on any non-positive Saliency/Remaining (see [`read_law_csv_with`]).
pub fn read_law_csv(path: &Path) -> Result<Vec<LawPoint>, LawError> {
    read_law_csv_with(path, &ReadOptions::default()).map(|c| c.points)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Saliency,
    Remaining,
    Accuracy,
    Epoch,
    Extra,
}

fn role_of(name: &str) -> Role {
    match name.trim().to_ascii_lowercase().as_str() {
        "saliency" => Role::Saliency,
        "remaining" => Role::Remaining,
        "accuracy" => Role::Accuracy,
        "epoch" | "epochs" => Role::Epoch,
        _ => Role::Extra,
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Saliency => "Saliency",
        Role::Remaining => "Remaining",
        Role::Accuracy => "Accuracy",
        Role::Epoch => "Epoch",
        Role::Extra => "extra",
    }
}

fn csv_error(path: &Path, body: &[u8], e: &csv::Error) -> LawError {
    // Line from the byte offset: csv's own line count is off with CRLF line endings.
    let line = e.position().map(|p| line_at(body, p.byte())).unwrap_or(0);
    match e.kind() {
        csv::ErrorKind::Io(io) => LawError::Read {
            path: path.to_path_buf(),
            source: io::Error::new(io.kind(), io.to_string()),
        },
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => LawError::Csv {
            path: path.to_path_buf(),
            line,
            msg: format!("{len} fields where the header has {expected_len}"),
        },
        csv::ErrorKind::Utf8 { .. } => LawError::Csv {
            path: path.to_path_buf(),
            line,
            msg: "not valid UTF-8".to_string(),
        },
        _ => LawError::Csv {
            path: path.to_path_buf(),
            line,
            msg: e.to_string(),
        },
    }
}

/// 1-based line number of the record starting at byte offset `byte` of `body`. The csv
/// parser may report a record as starting on the line break before it (e.g. the `\n` of a
/// CRLF), so breaks right at the offset are skipped first; CRLF, LF and lone CR all count once.
fn line_at(body: &[u8], byte: u64) -> u64 {
    let mut end = (byte as usize).min(body.len());
    while end < body.len() && (body[end] == b'\r' || body[end] == b'\n') {
        end += 1;
    }
    let head = &body[..end];
    let breaks = head
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && head.get(i + 1) != Some(&b'\n')))
        .count();
    1 + breaks as u64
}

/// Parses a finite number; `None` for empty, non-numeric or non-finite cells.
fn number(cell: &str) -> Option<f64> {
    cell.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Reads a law CSV (see the module docs for the column conventions).
///
/// Fails, naming the file and the data row / line, on: a missing Saliency or Remaining column,
/// an empty / non-numeric / non-finite value in a known column, Saliency or Remaining `<= 0`
/// (unless `opts.skip_nonpositive`, which drops such rows and lists them in
/// [`LawCsv::dropped`]), a malformed CSV, and fewer than [`MIN_POINTS`] usable points.
pub fn read_law_csv_with(path: &Path, opts: &ReadOptions) -> Result<LawCsv, LawError> {
    let bytes = fs::read(path).map_err(|source| LawError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(body);
    let header = rdr
        .headers()
        .map_err(|e| csv_error(path, body, &e))?
        .clone();

    let roles: Vec<Role> = header.iter().map(role_of).collect();
    let header_text = if header.is_empty() {
        "(empty)".to_string()
    } else {
        header.iter().collect::<Vec<_>>().join(",")
    };
    let find = |want: Role| -> Result<Option<usize>, LawError> {
        let idx: Vec<usize> = (0..roles.len()).filter(|&i| roles[i] == want).collect();
        if idx.len() > 1 {
            return Err(LawError::DuplicateColumn {
                path: path.to_path_buf(),
                column: role_name(want).to_string(),
            });
        }
        Ok(idx.first().copied())
    };
    let missing = |want: Role| LawError::MissingColumn {
        path: path.to_path_buf(),
        column: role_name(want).to_string(),
        header: header_text.clone(),
    };
    let sal_i = find(Role::Saliency)?.ok_or_else(|| missing(Role::Saliency))?;
    let rem_i = find(Role::Remaining)?.ok_or_else(|| missing(Role::Remaining))?;
    let acc_i = find(Role::Accuracy)?;
    let epo_i = find(Role::Epoch)?;
    let extra_i: Vec<usize> = (0..roles.len())
        .filter(|&i| roles[i] == Role::Extra)
        .collect();
    let extra_names: Vec<String> = extra_i
        .iter()
        .map(|&i| {
            let h = header.get(i).unwrap_or("").trim();
            if h.is_empty() {
                format!("column{}", i + 1)
            } else {
                h.to_string()
            }
        })
        .collect();
    let mut extra_ok = vec![true; extra_i.len()];

    // (point, raw extras) per kept row; extras are filtered once all rows are seen.
    let mut kept: Vec<(LawPoint, Vec<Option<f64>>)> = Vec::new();
    let mut dropped = Vec::new();
    for (k, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| csv_error(path, body, &e))?;
        let row = k + 1;
        // Physical line from the byte offset (csv's own line count is off with CRLF endings).
        let line = rec
            .position()
            .map(|p| line_at(body, p.byte()))
            .unwrap_or(row as u64 + 1);
        let cell = |i: usize| rec.get(i).unwrap_or("");
        let required = |i: usize, col: &str| -> Result<f64, LawError> {
            number(cell(i)).ok_or_else(|| LawError::NotNumeric {
                path: path.to_path_buf(),
                row,
                line,
                column: col.to_string(),
                value: cell(i).to_string(),
            })
        };
        let optional = |i: Option<usize>, col: &str| -> Result<Option<f64>, LawError> {
            match i {
                Some(i) if !cell(i).is_empty() => required(i, col).map(Some),
                _ => Ok(None),
            }
        };
        let saliency = required(sal_i, "Saliency")?;
        let remaining = required(rem_i, "Remaining")?;
        let accuracy = optional(acc_i, "Accuracy")?;
        let epoch = optional(epo_i, "Epoch")?;
        if saliency <= 0.0 || remaining <= 0.0 {
            if opts.skip_nonpositive {
                dropped.push(DroppedRow {
                    row,
                    line,
                    saliency,
                    remaining,
                });
                continue;
            }
            let (column, value) = if saliency <= 0.0 {
                ("Saliency", saliency)
            } else {
                ("Remaining", remaining)
            };
            return Err(LawError::NonPositive {
                path: path.to_path_buf(),
                row,
                line,
                column: column.to_string(),
                value,
            });
        }
        let mut raw = Vec::with_capacity(extra_i.len());
        for (j, &i) in extra_i.iter().enumerate() {
            let c = cell(i);
            if c.is_empty() {
                raw.push(None);
            } else if let Some(v) = number(c) {
                raw.push(Some(v));
            } else {
                extra_ok[j] = false;
                raw.push(None);
            }
        }
        kept.push((
            LawPoint {
                epoch,
                saliency,
                remaining,
                accuracy,
                extras: Vec::new(),
            },
            raw,
        ));
    }

    if kept.len() < MIN_POINTS {
        let dropped_note = if dropped.is_empty() {
            String::new()
        } else {
            format!(" ({} non-positive rows skipped)", dropped.len())
        };
        return Err(LawError::TooFewPoints {
            path: path.to_path_buf(),
            n: kept.len(),
            need: MIN_POINTS,
            dropped_note,
        });
    }

    let points = kept
        .into_iter()
        .map(|(mut p, raw)| {
            p.extras = raw
                .into_iter()
                .enumerate()
                .filter(|&(j, _)| extra_ok[j])
                .filter_map(|(j, v)| v.map(|v| (extra_names[j].clone(), v)))
                .collect();
            p
        })
        .collect();
    let ignored_columns = extra_names
        .iter()
        .zip(&extra_ok)
        .filter(|(_, ok)| !**ok)
        .map(|(n, _)| n.clone())
        .collect();
    Ok(LawCsv {
        points,
        dropped,
        ignored_columns,
    })
}

/// Formats a number so that it reads back exactly (shortest round-trip form).
fn fmt_num(v: f64) -> String {
    format!("{v:?}")
}

/// Writes points as a law CSV, atomically.
///
/// Header: `Epoch,Saliency,Remaining,Accuracy`, then the extras columns in the order of the first
/// point's extras (names that only later points have are appended after those). Missing optional
/// values are written as empty cells. The output reads back with [`read_law_csv`] unchanged
/// (given at least [`MIN_POINTS`] positive points).
pub fn write_law_csv(path: &Path, points: &[LawPoint]) -> Result<(), LawError> {
    let mut names: Vec<String> = Vec::new();
    for p in points {
        for (n, _) in &p.extras {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
    }
    let opt = |v: Option<f64>| v.map(fmt_num).unwrap_or_default();
    hf_fsutil::atomic_write(path, |w: &mut dyn Write| {
        let mut wr = csv::Writer::from_writer(w);
        let mut head = vec![
            "Epoch".to_string(),
            "Saliency".to_string(),
            "Remaining".to_string(),
            "Accuracy".to_string(),
        ];
        head.extend(names.iter().cloned());
        wr.write_record(&head).map_err(io::Error::other)?;
        for p in points {
            let mut rec = vec![
                opt(p.epoch),
                fmt_num(p.saliency),
                fmt_num(p.remaining),
                opt(p.accuracy),
            ];
            for n in &names {
                let v = p.extras.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
                rec.push(opt(v));
            }
            wr.write_record(&rec).map_err(io::Error::other)?;
        }
        wr.flush()
    })
    .map_err(|source| LawError::Write {
        path: path.to_path_buf(),
        source,
    })
}
