//! Per-epoch records of a run, written as CSV (one column per field, one `density_<layer>`
//! column per layer) and JSONL, rewritten atomically after every epoch so a user can plot a run
//! while it trains and never sees a half-written file.

use crate::fsutil::atomic_write;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

/// One epoch of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochRecord {
    /// 1-based epoch within the run.
    pub epoch: usize,
    /// "dense", "pruning" or "regrowth".
    pub stage: String,
    /// Pressure λ used during the epoch.
    pub lambda: f64,
    /// Planned density after the epoch (percent), when a scheduler runs.
    pub expected_density: Option<f64>,
    /// Measured density after the epoch (percent of prunable weights present).
    pub density: f64,
    /// Density per masked layer (percent).
    pub layer_density: Vec<(String, f64)>,
    /// Mean data loss (cross-entropy with label smoothing) over the epoch.
    pub data_loss: f64,
    /// Mean pressure loss λ·mean(m) over the epoch.
    pub pressure_loss: f64,
    /// Training accuracy over the epoch (percent, on the fly).
    pub train_accuracy: f64,
    /// Validation accuracy after the epoch (percent), when the run holds out a validation
    /// split of the training data (what schedules and choices may look at).
    #[serde(default)]
    pub val_accuracy: Option<f64>,
    /// Test accuracy after the epoch (percent): reported only, never used to choose.
    pub test_accuracy: f64,
    /// Weight learning rate of the epoch.
    pub weight_lr: f64,
    /// Mask learning rate of the epoch.
    pub mask_lr: f64,
    /// Wall time of the epoch (training and evaluation), seconds.
    pub seconds: f64,
    /// The density (percent) just before the final snap moved the masks onto the target, on
    /// the epoch that snapped (see `PruneConfig::final_freeze_epochs`); `None` elsewhere. Far from
    /// the target it means the controller did not do the pruning: the snap did.
    #[serde(default)]
    pub snapped_from: Option<f64>,
}

/// The record files of a run: `<stem>.csv` and `<stem>.jsonl`.
#[derive(Debug, Clone)]
pub struct RecordLog {
    csv: PathBuf,
    jsonl: PathBuf,
    /// Records so far.
    pub records: Vec<EpochRecord>,
}

impl RecordLog {
    /// A log writing `<dir>/<name>.csv` and `<dir>/<name>.jsonl`, starting from `records`
    /// (non-empty when a run resumes).
    pub fn new(dir: &Path, name: &str, records: Vec<EpochRecord>) -> Self {
        Self {
            csv: dir.join(format!("{name}.csv")),
            jsonl: dir.join(format!("{name}.jsonl")),
            records,
        }
    }

    /// Paths of the CSV and JSONL files.
    pub fn paths(&self) -> (&Path, &Path) {
        (&self.csv, &self.jsonl)
    }

    /// Appends a record and rewrites both files.
    pub fn push(&mut self, r: EpochRecord) -> io::Result<()> {
        self.records.push(r);
        self.write()
    }

    /// Rewrites both files from the records held.
    pub fn write(&self) -> io::Result<()> {
        atomic_write(&self.jsonl, |w| {
            for r in &self.records {
                serde_json::to_writer(&mut *w, r)?;
                w.write_all(b"\n")?;
            }
            Ok(())
        })?;
        atomic_write(&self.csv, |w| write_csv(w, &self.records))
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// Writes records as CSV: fixed columns, then `density_<layer>` for the layers of the first record.
pub fn write_csv(w: &mut dyn io::Write, records: &[EpochRecord]) -> io::Result<()> {
    let mut out = csv::Writer::from_writer(w);
    let layers: Vec<String> = records
        .first()
        .map(|r| r.layer_density.iter().map(|(n, _)| n.clone()).collect())
        .unwrap_or_default();
    let mut header = vec![
        "epoch",
        "stage",
        "lambda",
        "expected_density",
        "density",
        "data_loss",
        "pressure_loss",
        "train_accuracy",
        "val_accuracy",
        "test_accuracy",
        "weight_lr",
        "mask_lr",
        "seconds",
        "snapped_from",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    header.extend(layers.iter().map(|l| format!("density_{l}")));
    out.write_record(&header)?;
    for r in records {
        let mut row = vec![
            r.epoch.to_string(),
            r.stage.clone(),
            r.lambda.to_string(),
            fmt_opt(r.expected_density),
            r.density.to_string(),
            r.data_loss.to_string(),
            r.pressure_loss.to_string(),
            r.train_accuracy.to_string(),
            fmt_opt(r.val_accuracy),
            r.test_accuracy.to_string(),
            r.weight_lr.to_string(),
            r.mask_lr.to_string(),
            format!("{:.3}", r.seconds),
            fmt_opt(r.snapped_from),
        ];
        for l in &layers {
            let v = r
                .layer_density
                .iter()
                .find(|(n, _)| n == l)
                .map(|(_, d)| d.to_string())
                .unwrap_or_default();
            row.push(v);
        }
        out.write_record(&row)?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(epoch: usize) -> EpochRecord {
        EpochRecord {
            epoch,
            stage: "pruning".into(),
            lambda: 0.5,
            expected_density: Some(50.0),
            density: 60.0 - epoch as f64,
            layer_density: vec![("fc1".into(), 55.0), ("fc2".into(), 70.0)],
            data_loss: 0.3,
            pressure_loss: 0.1,
            train_accuracy: 97.0,
            val_accuracy: (epoch == 1).then_some(97.5),
            test_accuracy: 98.0,
            weight_lr: 1e-3,
            mask_lr: 1e-3,
            seconds: 1.25,
            snapped_from: (epoch == 2).then_some(40.0),
        }
    }

    #[test]
    fn csv_and_jsonl_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RecordLog::new(dir.path(), "records", vec![]);
        log.push(rec(1)).unwrap();
        log.push(rec(2)).unwrap();
        let csv = std::fs::read_to_string(dir.path().join("records.csv")).unwrap();
        let mut lines = csv.lines();
        let header = lines.next().unwrap();
        assert!(header.starts_with("epoch,stage,lambda,expected_density,density"));
        assert!(header.ends_with("density_fc1,density_fc2"));
        assert_eq!(lines.clone().count(), 2);
        assert!(
            header.contains(",seconds,snapped_from,density_fc1"),
            "{header}"
        );
        assert!(header.contains(",train_accuracy,val_accuracy,test_accuracy,"));
        assert!(lines.clone().next().unwrap().contains(",97,97.5,98,"));
        assert!(lines.clone().nth(1).unwrap().contains(",97,,98,"));
        assert!(lines.clone().next().unwrap().contains(",1.250,,55,"));
        assert!(lines.nth(1).unwrap().starts_with("2,pruning,0.5,50,58,"));
        let jsonl = std::fs::read_to_string(dir.path().join("records.jsonl")).unwrap();
        let back: Vec<EpochRecord> = jsonl
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(back, vec![rec(1), rec(2)]);
        // Records written before the field existed still read.
        let old = jsonl
            .lines()
            .next()
            .unwrap()
            .replace(",\"snapped_from\":null", "");
        assert!(!old.contains("snapped_from"));
        assert_eq!(serde_json::from_str::<EpochRecord>(&old).unwrap(), rec(1));
    }
}
