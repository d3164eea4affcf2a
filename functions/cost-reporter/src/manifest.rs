//! The export's manifest, the truth about a billing period: which data files make it and
//! the columns they hold.
//!
//! Data Exports writes `<prefix>/<export-name>/metadata/BILLING_PERIOD=YYYY-MM/<export-name>-Manifest.json`
//! after all data files of an execution are delivered, with `executionId`, `exportArn`,
//! `columns` and `dataFiles` (full S3 URIs; "we recommend identifying which files to
//! ingest by programmatically reading this list"):
//! <https://docs.aws.amazon.com/cur/latest/userguide/dataexports-export-delivery.html>,
//! <https://docs.aws.amazon.com/cur/latest/userguide/dataexports-manifest.html>.
//! With the "create new report" option each execution delivers its own manifest; the
//! latest one (last modified, then key) is read, and the report names its execution id.
//!
//! The manifest documents no format field, so the format of each part is told by its
//! content (the Parquet magic `PAR1`, the gzip magic `1f 8b`, else plain CSV), never by
//! its name; the table (CUR 2.0 or FOCUS 1.2) by the manifest's columns.

use serde::{Deserialize, Serialize};

use crate::cur::Table;

/// The manifest's name suffix.
pub const SUFFIX: &str = "-Manifest.json";

/// A manifest as Data Exports writes it (unknown fields ignored).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// The execution that delivered the files (the assembly).
    #[serde(default)]
    pub execution_id: String,
    /// The export.
    #[serde(default)]
    pub export_arn: String,
    /// The columns of the data files.
    #[serde(default)]
    pub columns: Vec<Column>,
    /// The data files, `s3://bucket/key`.
    #[serde(default)]
    pub data_files: Vec<String>,
}

/// One column of the manifest.
#[derive(Debug, Clone, Deserialize)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its type as the manifest gives it.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// One data file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
}

impl Part {
    /// `s3://bucket/key`.
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// The format of a part, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Format {
    /// gzip CSV.
    #[serde(rename = "gzip CSV")]
    GzipCsv,
    /// Uncompressed CSV.
    #[serde(rename = "CSV")]
    Csv,
    /// Parquet.
    #[serde(rename = "Parquet")]
    Parquet,
}

impl Format {
    /// From the first bytes of a file.
    pub fn sniff(head: &[u8]) -> Format {
        if head.starts_with(b"PAR1") {
            Format::Parquet
        } else if head.starts_with(&[0x1f, 0x8b]) {
            Format::GzipCsv
        } else {
            Format::Csv
        }
    }

    /// Its name in outputs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Format::GzipCsv => "gzip CSV",
            Format::Csv => "CSV",
            Format::Parquet => "Parquet",
        }
    }
}

/// Why a manifest cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not the JSON of a manifest.
    #[error("{key}: not a Data Exports manifest: {reason}")]
    Unreadable {
        /// The manifest's key.
        key: String,
        /// What the parser said.
        reason: String,
    },
    /// A data file that is not an `s3://bucket/key` URI.
    #[error("{key}: data file `{uri}` is not an s3://bucket/key URI")]
    BadUri {
        /// The manifest's key.
        key: String,
        /// The entry.
        uri: String,
    },
    /// No data files at all.
    #[error("{key}: the manifest lists no data files")]
    NoParts {
        /// The manifest's key.
        key: String,
    },
}

impl Manifest {
    /// Parses a manifest's body.
    pub fn parse(key: &str, body: &[u8]) -> Result<Manifest, ManifestError> {
        serde_json::from_slice(body).map_err(|e| ManifestError::Unreadable {
            key: key.to_owned(),
            reason: e.to_string(),
        })
    }

    /// The data files, in the manifest's order.
    pub fn parts(&self, key: &str) -> Result<Vec<Part>, ManifestError> {
        if self.data_files.is_empty() {
            return Err(ManifestError::NoParts {
                key: key.to_owned(),
            });
        }
        self.data_files
            .iter()
            .map(|uri| {
                uri.strip_prefix("s3://")
                    .and_then(|rest| rest.split_once('/'))
                    .filter(|(b, k)| !b.is_empty() && !k.is_empty())
                    .map(|(bucket, key)| Part {
                        bucket: bucket.to_owned(),
                        key: key.to_owned(),
                    })
                    .ok_or_else(|| ManifestError::BadUri {
                        key: key.to_owned(),
                        uri: uri.clone(),
                    })
            })
            .collect()
    }

    /// The table its columns describe.
    pub fn table(&self) -> Table {
        Table::detect(self.columns.iter().map(|c| c.name.as_bytes()))
    }
}

/// Of the objects under the period's metadata prefix `(key, last modified ms)`, the
/// manifest to read: the latest, ties broken by key.
pub fn latest<'a>(objects: impl IntoIterator<Item = (&'a str, i64)>) -> Option<&'a str> {
    objects
        .into_iter()
        .filter(|(k, _)| k.ends_with(SUFFIX))
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(b.0)))
        .map(|(k, _)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_fields_and_picks_the_latest_execution() {
        let body = br#"{"executionId":"e-2","exportArn":"arn:aws:bcm-data-exports:us-east-1:1:export/x","columns":[{"name":"BilledCost","type":"double"},{"name":"x_ServiceCode","type":"string"}],"dataFiles":["s3://b/p/x/data/BILLING_PERIOD=2026-10/x-00001.snappy.parquet"],"additionalOutputFiles":[]}"#;
        let m = Manifest::parse("m", body).unwrap();
        assert_eq!(m.table(), Table::Focus12);
        assert_eq!(
            m.parts("m").unwrap(),
            vec![Part {
                bucket: "b".into(),
                key: "p/x/data/BILLING_PERIOD=2026-10/x-00001.snappy.parquet".into()
            }]
        );
        let bad = Manifest::parse("m", br#"{"dataFiles":["https://x/y"]}"#).unwrap();
        assert!(matches!(bad.parts("m"), Err(ManifestError::BadUri { .. })));
        assert!(matches!(
            Manifest::parse("m", b"{").unwrap_err(),
            ManifestError::Unreadable { .. }
        ));
        assert_eq!(
            latest([
                ("a/e1/x-Manifest.json", 5),
                ("a/e2/x-Manifest.json", 9),
                ("a/e2/other.json", 99)
            ]),
            Some("a/e2/x-Manifest.json")
        );
        assert_eq!(Format::sniff(b"PAR1\x15"), Format::Parquet);
        assert_eq!(Format::sniff(&[0x1f, 0x8b, 8]), Format::GzipCsv);
        assert_eq!(Format::sniff(b"bill_"), Format::Csv);
    }
}
