//! The CUR 2.0 parse/aggregate core: synchronous, pure, over any [`std::io::Read`], so it
//! is unit-tested and benchmarked on a local file exactly as it runs on an S3 body.
//!
//! One pass, bounded memory: the gzip decoder and the CSV reader each hold one buffer,
//! a row is split in place ([`simd_csv::ZeroCopyReader`]: separators found with SIMD
//! search, only the fields the report reads unescaped), and Region, service, usage-type and
//! line-item-type strings are interned (a row allocates nothing once its keys are known).
//! Money is exact from the text to the totals: each row's amounts are added per key as
//! integers of 10^-15 ([`Amount`], [`Sum`]), and the sums become [`Decimal`] once per
//! key when a file ends.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Serialize;
use simd_csv::{ZeroCopyByteRecord, ZeroCopyReaderBuilder};

/// Columns the report needs from a CUR 2.0 file; a file without any of them is refused,
/// naming each.
pub const REQUIRED_COLUMNS: [&str; 10] = [
    "line_item_usage_start_date",
    "line_item_product_code",
    "line_item_usage_type",
    "line_item_line_item_type",
    "line_item_unblended_cost",
    "product_region_code",
    "product_from_region_code",
    "product_to_region_code",
    "line_item_resource_id",
    "resource_tags",
];

/// Used where present: a row's cost is its net unblended cost when the column exists and
/// the value is not empty, else its unblended cost.
pub const NET_COLUMN: &str = "line_item_net_unblended_cost";

/// Which Data Exports table a file holds. Both are documented in the Data Exports table
/// dictionary: <https://docs.aws.amazon.com/cur/latest/userguide/table-dictionary-cur2.html>
/// and <https://docs.aws.amazon.com/cur/latest/userguide/table-dictionary-focus-1-2-aws-columns.html>.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Table {
    /// CUR 2.0 (`COST_AND_USAGE_REPORT`).
    #[serde(rename = "CUR 2.0")]
    Cur2,
    /// FOCUS 1.2 with AWS columns (`x_ServiceCode`, `x_UsageType`).
    #[serde(rename = "FOCUS 1.2")]
    Focus12,
}

/// The columns of one table that play each role in the report.
#[derive(Debug, Clone, Copy)]
pub struct ColumnNames {
    /// When the usage started (drill windows).
    pub start: &'static str,
    /// Service (product code).
    pub product: &'static str,
    /// Usage type (decides the category and transfer pairs).
    pub usage_type: &'static str,
    /// Line item type / charge category.
    pub item_type: &'static str,
    /// The cost.
    pub unblended: &'static str,
    /// The net cost, used where present and not empty.
    pub net: Option<&'static str>,
    /// Region code.
    pub region: &'static str,
    /// Transfer source Region code (CUR 2.0 only; FOCUS has the usage type).
    pub from_region: Option<&'static str>,
    /// Transfer destination Region code.
    pub to_region: Option<&'static str>,
    /// Resource id or ARN.
    pub resource: &'static str,
    /// Tags: a JSON object in CSV, a `map<string,string>` in Parquet.
    pub tags: &'static str,
}

const CUR2_NAMES: ColumnNames = ColumnNames {
    start: "line_item_usage_start_date",
    product: "line_item_product_code",
    usage_type: "line_item_usage_type",
    item_type: "line_item_line_item_type",
    unblended: "line_item_unblended_cost",
    net: Some(NET_COLUMN),
    region: "product_region_code",
    from_region: Some("product_from_region_code"),
    to_region: Some("product_to_region_code"),
    resource: "line_item_resource_id",
    tags: "resource_tags",
};

/// FOCUS 1.2: `BilledCost` is "a charge serving as the basis for invoicing, inclusive of
/// all reduced rates and discounts", the counterpart of CUR's net unblended cost.
const FOCUS_NAMES: ColumnNames = ColumnNames {
    start: "ChargePeriodStart",
    product: "x_ServiceCode",
    usage_type: "x_UsageType",
    item_type: "ChargeCategory",
    unblended: "BilledCost",
    net: None,
    region: "RegionId",
    from_region: None,
    to_region: None,
    resource: "ResourceId",
    tags: "Tags",
};

impl Table {
    /// The role of each column.
    pub const fn names(self) -> &'static ColumnNames {
        match self {
            Table::Cur2 => &CUR2_NAMES,
            Table::Focus12 => &FOCUS_NAMES,
        }
    }

    /// Every column the report cannot do without, in a stable order.
    pub fn required(self) -> Vec<&'static str> {
        let n = self.names();
        let mut v = vec![
            n.start,
            n.product,
            n.usage_type,
            n.item_type,
            n.unblended,
            n.region,
        ];
        v.extend(n.from_region);
        v.extend(n.to_region);
        v.extend([n.resource, n.tags]);
        v
    }

    /// The table of a schema, from its column names: FOCUS has `BilledCost` and
    /// `x_ServiceCode`; anything else is taken as CUR 2.0 (whose own columns are then
    /// checked, so a file of neither is refused naming what it lacks).
    pub fn detect<'a>(mut names: impl Iterator<Item = &'a [u8]>) -> Table {
        let (mut billed, mut service) = (false, false);
        for n in names.by_ref() {
            billed |= n == b"BilledCost";
            service |= n == b"x_ServiceCode";
        }
        if billed && service {
            Table::Focus12
        } else {
            Table::Cur2
        }
    }

    /// Its name in outputs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Table::Cur2 => "CUR 2.0",
            Table::Focus12 => "FOCUS 1.2",
        }
    }
}

/// The Region key of rows without a Region (global services, some taxes and fees).
pub const GLOBAL: &str = "global";

/// At most this many distinct values per interned column; further ones are counted
/// under `(other)`, so memory stays bounded whatever the file.
const MAX_DISTINCT: usize = 10_000;
/// At most this many distinct `resource_tags` values remembered.
const MAX_TAG_CACHE: usize = 8_192;
/// Bad rows quoted by line in the report (all are counted).
const MAX_QUOTED_BAD_ROWS: usize = 20;

/// What a cost is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// EC2 instances, Lambda, containers.
    Compute,
    /// RDS/Aurora, DynamoDB and other databases.
    Database,
    /// ElastiCache, MemoryDB, DAX.
    Cache,
    /// S3, EBS, EFS, backups.
    Storage,
    /// Data transfer, load balancers, NAT, DNS, CDN.
    Network,
    /// Everything else (tax, support, monitoring...).
    Other,
}

impl Category {
    /// Every category, in report order.
    pub const ALL: [Category; 6] = [
        Category::Compute,
        Category::Database,
        Category::Cache,
        Category::Storage,
        Category::Network,
        Category::Other,
    ];

    /// Its name in outputs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Category::Compute => "compute",
            Category::Database => "database",
            Category::Cache => "cache",
            Category::Storage => "storage",
            Category::Network => "network",
            Category::Other => "other",
        }
    }
}

/// The category of a line item from its product code and usage type.
pub fn classify(product_code: &str, usage_type: &str) -> Category {
    let usage_is = |needle: &str| usage_type.contains(needle);
    if usage_is("DataTransfer")
        || usage_is("-Bytes")
        || usage_is("NatGateway")
        || usage_is("LoadBalancer")
        || usage_is("LCUUsage")
    {
        return Category::Network;
    }
    if usage_is("EBS:") || usage_is("EBSOptimized") || usage_is("SnapshotUsage") {
        return Category::Storage;
    }
    match product_code {
        "AmazonEC2" | "AWSLambda" | "AmazonECS" | "AmazonEKS" | "AWSFargate" | "AWSBatch"
        | "AmazonLightsail" | "AWSAppRunner" => Category::Compute,
        "AmazonRDS" | "AmazonDynamoDB" | "AmazonDocDB" | "AmazonNeptune" | "AmazonRedshift"
        | "AmazonMCS" | "AmazonTimestream" => Category::Database,
        "AmazonElastiCache" | "AmazonMemoryDB" | "AmazonDAX" => Category::Cache,
        "AmazonS3"
        | "AmazonEFS"
        | "AmazonFSx"
        | "AWSBackup"
        | "AmazonGlacier"
        | "AWSStorageGateway"
        | "AmazonS3GlacierDeepArchive" => Category::Storage,
        "AmazonCloudFront"
        | "AmazonRoute53"
        | "AWSGlobalAccelerator"
        | "AmazonVPC"
        | "AWSDataTransfer"
        | "AWSELB"
        | "AWSDirectConnect"
        | "AmazonApiGateway" => Category::Network,
        _ => Category::Other,
    }
}

/// The Region of a CUR usage-type prefix (`USE1` → `us-east-1`).
pub fn region_of_prefix(prefix: &str) -> Option<&'static str> {
    Some(match prefix {
        "USE1" => "us-east-1",
        "USE2" => "us-east-2",
        "USW1" => "us-west-1",
        "USW2" => "us-west-2",
        "CAN1" => "ca-central-1",
        "CAN2" => "ca-west-1",
        "EUC1" => "eu-central-1",
        "EUC2" => "eu-central-2",
        "EUW1" | "EU" => "eu-west-1",
        "EUW2" => "eu-west-2",
        "EUW3" => "eu-west-3",
        "EUN1" => "eu-north-1",
        "EUS1" => "eu-south-1",
        "EUS2" => "eu-south-2",
        "APN1" => "ap-northeast-1",
        "APN2" => "ap-northeast-2",
        "APN3" => "ap-northeast-3",
        "APS1" => "ap-southeast-1",
        "APS2" => "ap-southeast-2",
        "APS3" => "ap-south-1",
        "APS4" => "ap-southeast-3",
        "APS5" => "ap-south-2",
        "APS6" => "ap-southeast-4",
        "APE1" => "ap-east-1",
        "SAE1" => "sa-east-1",
        "MES1" => "me-south-1",
        "MEC1" => "me-central-1",
        "AFS1" => "af-south-1",
        "ILC1" => "il-central-1",
        "MXC1" => "mx-central-1",
        _ => return None,
    })
}

/// The inter-Region pair `(from, to)` a usage type such as `USE1-EUW1-AWS-Out-Bytes`
/// names (`-In-Bytes` reverses it: the data came from the second Region).
pub fn transfer_pair(usage_type: &str) -> Option<(&'static str, &'static str)> {
    let mut parts = usage_type.splitn(3, '-');
    let a = region_of_prefix(parts.next()?)?;
    let b = region_of_prefix(parts.next()?)?;
    let rest = parts.next()?;
    if a == b {
        return None;
    }
    if rest.ends_with("Out-Bytes") {
        Some((a, b))
    } else if rest.ends_with("In-Bytes") {
        Some((b, a))
    } else {
        None
    }
}

/// Which rows belong to the workload: those tagged `tag_key = workload`, or whose
/// resource id names a resource of the spec (a bucket, DB instance or cluster, table).
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// The key in `resource_tags`, as the export writes it (e.g. `user_lifeboat_workload`).
    pub tag_key: String,
    /// The workload id the tag must carry.
    pub workload: String,
    /// Resource names from the spec.
    pub resources: HashSet<String>,
}

impl Scope {
    pub(crate) fn matches_resource(&self, id: &[u8]) -> bool {
        resource_named(&self.resources, id)
    }

    /// Whether one `key → value` entry of a tag map is the workload's tag.
    pub(crate) fn matches_tag_pair(&self, key: &[u8], value: &[u8]) -> bool {
        key == self.tag_key.as_bytes() && value == self.workload.as_bytes()
    }

    /// Whether a JSON object of tags carries the workload's tag.
    pub(crate) fn matches_json_tags(&self, tags: &[u8]) -> bool {
        if tags.len() <= 2 {
            return false;
        }
        let Ok(map) = serde_json::from_slice::<HashMap<String, serde_json::Value>>(tags) else {
            return false;
        };
        map.get(&self.tag_key)
            .and_then(|v| v.as_str())
            .is_some_and(|v| v == self.workload)
    }
}

/// Whether a CUR resource id (a name or an ARN) names one of `names`: equal, or its last
/// `:`/`/` segment is (`arn:aws:rds:…:db:checkout-db`, `arn:aws:dynamodb:…:table/orders`).
fn resource_named(names: &HashSet<String>, id: &[u8]) -> bool {
    if id.is_empty() || names.is_empty() {
        return false;
    }
    let Ok(id) = std::str::from_utf8(id) else {
        return false;
    };
    if names.contains(id) {
        return true;
    }
    let last = id.rsplit([':', '/']).next().unwrap_or(id);
    names.contains(last)
}

/// A drill's window and resources, from its run record.
#[derive(Debug, Clone)]
pub struct DrillWindow {
    /// Run id.
    pub id: String,
    /// Start, Unix ms (rows whose usage hour starts at or after its hour count).
    pub start_ms: u64,
    /// End, Unix ms (exclusive).
    pub end_ms: u64,
    /// Resources the drill names; empty means every resource of the workload.
    pub resources: HashSet<String>,
}

impl DrillWindow {
    fn covers(&self, hour_ms: u64, resource_id: &[u8]) -> bool {
        let first_hour = self.start_ms - self.start_ms % 3_600_000;
        hour_ms >= first_hour
            && hour_ms < self.end_ms
            && (self.resources.is_empty() || resource_named(&self.resources, resource_id))
    }
}

/// What is wrong with one row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Defect {
    /// Not as many fields as the header.
    #[error("expected {expected} columns, found {found}")]
    WrongColumnCount {
        /// Header width.
        expected: usize,
        /// This row's width.
        found: usize,
    },
    /// A money field that is not a number.
    #[error("{column} is not a number: `{value}`")]
    NotANumber {
        /// The column.
        column: &'static str,
        /// The text found (truncated).
        value: String,
    },
    /// The usage start is not a timestamp (only checked when drills are costed).
    #[error("line_item_usage_start_date is not a timestamp: `{value}`")]
    BadTimestamp {
        /// The text found (truncated).
        value: String,
    },
}

/// Why a file could not be used. Every variant names the file; row-level ones the line (CSV) or row group and row (Parquet).
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// No header line.
    #[error("{file}: empty file, no header line")]
    Empty {
        /// The file.
        file: String,
    },
    /// Required columns absent from the header.
    #[error("{file}: missing required column(s): {}", missing.join(", "))]
    MissingColumns {
        /// The file.
        file: String,
        /// Every missing column.
        missing: Vec<&'static str>,
    },
    /// A bad row, and `skip_bad_rows` is off.
    #[error("{file}: {at}: {defect}")]
    BadRow {
        /// The file.
        file: String,
        /// The row's line (CSV) or row group and row (Parquet).
        at: RowAt,
        /// What is wrong.
        defect: Defect,
    },
    /// The data itself is broken: truncated or corrupt gzip, invalid CSV quoting.
    #[error("{file}: line {line}: corrupt or truncated data: {source}")]
    Corrupt {
        /// The file.
        file: String,
        /// The line being read when it broke.
        line: u64,
        /// What the decoder said.
        #[source]
        source: io::Error,
    },
    /// Reading the source failed (network): worth retrying.
    #[error("{file}: reading failed at line {line}")]
    Source {
        /// The file.
        file: String,
        /// The line being read.
        line: u64,
        /// The source's error.
        #[source]
        source: io::Error,
    },
    /// A Parquet file that cannot be read: truncated, corrupt, or compressed with a codec
    /// this build does not decode. Names the row group and column when the failure is in
    /// one.
    #[error("{file}: {}corrupt, truncated or unreadable Parquet: {source}", at(*row_group, column.as_deref()))]
    Parquet {
        /// The file.
        file: String,
        /// The row group being read (0-based), if any.
        row_group: Option<usize>,
        /// The column being read, if any.
        column: Option<String>,
        /// What the decoder said.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A column whose Parquet type the report cannot read as what it needs.
    #[error("{file}: column {column} is {found}, expected {expected}")]
    ColumnType {
        /// The file.
        file: String,
        /// The column.
        column: &'static str,
        /// Its physical/logical type.
        found: String,
        /// What would do.
        expected: &'static str,
    },
    /// Sums beyond what a decimal holds: the file cannot be a bill.
    #[error("{file}: {at}: cost sum overflows")]
    Overflow {
        /// The file.
        file: String,
        /// Where.
        at: RowAt,
    },
}

/// Where a row is in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum RowAt {
    /// A CSV line, 1-based (the header is line 1).
    Line {
        /// The line.
        line: u64,
    },
    /// A Parquet row: its row group and its row in that group, both 0-based (as
    /// Parquet tools count them).
    Row {
        /// The row group.
        row_group: usize,
        /// The row within the row group.
        row: u64,
    },
}

impl std::fmt::Display for RowAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RowAt::Line { line } => write!(f, "line {line}"),
            RowAt::Row { row_group, row } => write!(f, "row group {row_group}, row {row}"),
        }
    }
}

fn at(row_group: Option<usize>, column: Option<&str>) -> String {
    match (row_group, column) {
        (Some(g), Some(c)) => format!("row group {g}, column {c}: "),
        (Some(g), None) => format!("row group {g}: "),
        (None, Some(c)) => format!("column {c}: "),
        (None, None) => String::new(),
    }
}

/// Marks an error of the underlying source (network, disk) so it is told apart from
/// broken data after going through the gzip decoder and csv reader.
#[derive(Debug, thiserror::Error)]
#[error("source read failed")]
pub struct SourceError(#[source] pub io::Error);

/// Wraps a reader so its own errors are recognisable as [`ParseError::Source`].
#[derive(Debug)]
pub struct TagSourceErrors<R>(pub R);

impl<R: Read> Read for TagSourceErrors<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0
            .read(buf)
            .map_err(|e| io::Error::other(SourceError(e)))
    }
}

/// How a file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// `.csv.gz` (gzip members concatenated are read as one stream).
    Gzip,
    /// Plain `.csv`.
    None,
}

impl Compression {
    /// From a key's suffix; `None` for a key that is not CSV.
    pub fn of_key(key: &str) -> Option<Compression> {
        if key.ends_with(".csv.gz") {
            Some(Compression::Gzip)
        } else if key.ends_with(".csv") {
            Some(Compression::None)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Columns {
    table: Table,
    start: usize,
    product: usize,
    usage_type: usize,
    item_type: usize,
    unblended: usize,
    net: Option<usize>,
    region: usize,
    from_region: Option<usize>,
    to_region: Option<usize>,
    resource: usize,
    tags: usize,
    width: usize,
}

impl Columns {
    fn from_header(
        header: &[Cow<'_, [u8]>],
        file: &str,
        table: Option<Table>,
    ) -> Result<Columns, ParseError> {
        let table = table.unwrap_or_else(|| Table::detect(header.iter().map(|h| trim_bom(h))));
        let find = |name: &str| header.iter().position(|h| trim_bom(h) == name.as_bytes());
        let missing: Vec<&'static str> = table
            .required()
            .into_iter()
            .filter(|name| find(name).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(ParseError::MissingColumns {
                file: file.to_owned(),
                missing,
            });
        }
        let n = table.names();
        let at = |name: &str| find(name).unwrap_or(0);
        Ok(Columns {
            table,
            start: at(n.start),
            product: at(n.product),
            usage_type: at(n.usage_type),
            item_type: at(n.item_type),
            unblended: at(n.unblended),
            net: n.net.and_then(find),
            region: at(n.region),
            from_region: n.from_region.and_then(find),
            to_region: n.to_region.and_then(find),
            resource: at(n.resource),
            tags: at(n.tags),
            width: header.len(),
        })
    }
}

fn trim_bom(field: &[u8]) -> &[u8] {
    field.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(field)
}

/// A fast hash for the aggregation's small keys (interned ids, short names): a
/// multiply-rotate in the manner of rustc's FxHash. Not flood-resistant, which is fine
/// here: the keys come from the account's own bill and each interner is bounded
/// ([`MAX_DISTINCT`]).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl FastHasher {
    const K: u64 = 0xf135_7aea_2e62_a9c5;

    #[inline]
    fn mix(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(Self::K);
    }
}

impl std::hash::Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in chunks.by_ref() {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        // The length keeps `ab` + `` apart from `a` + `b` in composite keys.
        self.mix(u64::from_le_bytes(w) ^ ((bytes.len() as u64) << 56));
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.mix(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // The multiply leaves its entropy in the high bits; the table indexes by the low.
        self.0.rotate_left(26)
    }
}

/// A `HashMap` with [`FastHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;

#[derive(Debug, Default)]
struct Interner {
    map: FastMap<Box<[u8]>, u32>,
    names: Vec<String>,
    overflow: Option<u32>,
}

impl Interner {
    fn id(&mut self, key: &[u8]) -> u32 {
        if let Some(&id) = self.map.get(key) {
            return id;
        }
        if self.names.len() >= MAX_DISTINCT {
            if let Some(id) = self.overflow {
                return id;
            }
            let id = self.push("(other)".to_owned());
            self.overflow = Some(id);
            return id;
        }
        let id = self.push(String::from_utf8_lossy(key).into_owned());
        self.map.insert(key.into(), id);
        id
    }

    fn push(&mut self, name: String) -> u32 {
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(name);
        id
    }

    fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", String::as_str)
    }
}

#[derive(Debug, Clone, Copy)]
struct Class {
    category: Category,
    transfer: Option<(u32, u32)>,
}

/// Interned id of an empty transfer Region (`product_from_region_code` or
/// `product_to_region_code` not given).
pub(crate) const NO_REGION: u32 = u32::MAX;

/// What rows in scope are summed under: interned ids of their Region (empty: `global`),
/// service, usage type, line item type and transfer Regions ([`NO_REGION`] when empty).
/// The category and transfer pair follow from the key alone, so they are worked out
/// once per key when a file is done ([`Aggregator::file_done`]), not once per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    pub(crate) region: u32,
    pub(crate) service: u32,
    pub(crate) usage: u32,
    pub(crate) item: u32,
    pub(crate) from: u32,
    pub(crate) to: u32,
}

impl std::hash::Hash for Key {
    /// One word for the hasher: the ids times distinct odd constants, summed. The six
    /// products are independent (a hash per id would chain six multiplies, row after
    /// row); every id reaches the word's low bits, which the table's tags and index
    /// come from once the hasher mixes it. Equal keys hash alike, as `Eq` requires.
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        const M: [u64; 6] = [
            0x9e37_79b9_7f4a_7c15,
            0xc2b2_ae3d_27d4_eb4f,
            0x1656_67b1_9e37_79f9,
            0xd6e8_feb8_6659_fd93,
            0xa076_1d64_78bd_642f,
            0xe703_7ed1_a0b4_28db,
        ];
        let ids = [
            self.region,
            self.service,
            self.usage,
            self.item,
            self.from,
            self.to,
        ];
        let word = ids.iter().zip(M).fold(0u64, |acc, (&id, m)| {
            acc.wrapping_add(u64::from(id).wrapping_mul(m))
        });
        h.write_u64(word);
    }
}

/// The interned names of one aggregator, for sources that map their own values (Parquet
/// dictionaries) to ids once.
#[derive(Debug, Default)]
pub(crate) struct Names {
    regions: Interner,
    services: Interner,
    usage_types: Interner,
    item_types: Interner,
}

impl Names {
    /// A row's Region: empty is `global`.
    pub(crate) fn region(&mut self, b: &[u8]) -> u32 {
        if b.is_empty() {
            self.regions.id(GLOBAL.as_bytes())
        } else {
            self.regions.id(b)
        }
    }

    /// A transfer's source or destination Region: empty is [`NO_REGION`].
    pub(crate) fn end_region(&mut self, b: &[u8]) -> u32 {
        if b.is_empty() {
            NO_REGION
        } else {
            self.regions.id(b)
        }
    }

    pub(crate) fn service(&mut self, b: &[u8]) -> u32 {
        self.services.id(b)
    }

    pub(crate) fn usage(&mut self, b: &[u8]) -> u32 {
        self.usage_types.id(b)
    }

    pub(crate) fn item(&mut self, b: &[u8]) -> u32 {
        self.item_types.id(b)
    }
}

/// One line of the aggregate: a Region × service × category cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    /// Region code, or `global`.
    pub region: String,
    /// Product code, e.g. `AmazonEC2`.
    pub service: String,
    /// Category.
    pub category: Category,
    /// Cost (net unblended where present).
    pub cost: Decimal,
    /// Unblended cost.
    pub unblended_cost: Decimal,
}

/// Inter-Region data transfer between two Regions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transfer {
    /// Where the data left.
    pub from_region: String,
    /// Where it went.
    pub to_region: String,
    /// Cost.
    pub cost: Decimal,
}

/// A row refused and skipped (`skip_bad_rows`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadRow {
    /// The file.
    pub file: String,
    /// Its line (CSV: `line`) or row group and row (Parquet: `row_group`, `row`).
    #[serde(flatten)]
    pub at: RowAt,
    /// What is wrong.
    pub defect: String,
}

/// One file read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileStats {
    /// Key or path.
    pub file: String,
    /// Data rows (the header excluded).
    pub rows: u64,
    /// Whether the net unblended cost column was present.
    pub net_column: bool,
    /// The table it holds.
    pub table: Table,
    /// `CSV` (gzip or plain) or `Parquet`.
    pub format: &'static str,
}

/// The aggregates of every file read, names resolved and sorted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Aggregates {
    /// Files read, in order.
    pub files: Vec<FileStats>,
    /// Data rows read.
    pub rows: u64,
    /// Rows that belong to the scope (all rows without a scope).
    pub matched_rows: u64,
    /// Rows refused and skipped.
    pub bad_rows: u64,
    /// The first bad rows, by line.
    pub bad_row_samples: Vec<BadRow>,
    /// Cost of the rows in scope.
    pub total: Decimal,
    /// Unblended cost of the rows in scope.
    pub total_unblended: Decimal,
    /// Cost of the rows outside the scope (the rest of the bill).
    pub out_of_scope: Decimal,
    /// Region × service × category.
    pub cells: Vec<Cell>,
    /// Inter-Region transfer per pair.
    pub transfers: Vec<Transfer>,
    /// Cost per line item type (`Usage`, `Tax`, `Credit`...).
    pub line_item_types: Vec<(String, Decimal)>,
    /// Cost of each drill, in the order of the windows given.
    pub drills: Vec<(String, Decimal)>,
}

impl Aggregates {
    /// Nothing read yet: the identity of [`Aggregates::merge`].
    pub fn empty(drill_ids: &[String]) -> Aggregates {
        Aggregates {
            files: Vec::new(),
            rows: 0,
            matched_rows: 0,
            bad_rows: 0,
            bad_row_samples: Vec::new(),
            total: Decimal::ZERO,
            total_unblended: Decimal::ZERO,
            out_of_scope: Decimal::ZERO,
            cells: Vec::new(),
            transfers: Vec::new(),
            line_item_types: Vec::new(),
            drills: drill_ids
                .iter()
                .map(|d| (d.clone(), Decimal::ZERO))
                .collect(),
        }
    }

    /// `self` then `other` (files in that order), every sum exact: decimal addition, keys
    /// matched by name, outputs sorted, so merging parts read in any order or on any
    /// number of threads gives the same aggregates. `None` if a sum overflows.
    pub fn merge(self, other: Aggregates) -> Option<Aggregates> {
        fn sum<K: Ord>(
            into: &mut std::collections::BTreeMap<K, Decimal>,
            k: K,
            v: Decimal,
        ) -> Option<()> {
            let e = into.entry(k).or_default();
            *e = e.checked_add(v)?;
            Some(())
        }
        let mut cells = std::collections::BTreeMap::new();
        let mut cells_unblended = std::collections::BTreeMap::new();
        for c in self.cells.into_iter().chain(other.cells) {
            let k = (c.region, c.service, c.category);
            sum(&mut cells_unblended, k.clone(), c.unblended_cost)?;
            sum(&mut cells, k, c.cost)?;
        }
        let mut transfers = std::collections::BTreeMap::new();
        for t in self.transfers.into_iter().chain(other.transfers) {
            sum(&mut transfers, (t.from_region, t.to_region), t.cost)?;
        }
        let mut types = std::collections::BTreeMap::new();
        for (k, v) in self
            .line_item_types
            .into_iter()
            .chain(other.line_item_types)
        {
            sum(&mut types, k, v)?;
        }
        let mut drills = self.drills;
        for ((_, into), (_, v)) in drills.iter_mut().zip(other.drills) {
            *into = into.checked_add(v)?;
        }
        let mut files = self.files;
        files.extend(other.files);
        let mut bad_row_samples = self.bad_row_samples;
        bad_row_samples.extend(other.bad_row_samples);
        bad_row_samples.truncate(MAX_QUOTED_BAD_ROWS);
        Some(Aggregates {
            files,
            rows: self.rows + other.rows,
            matched_rows: self.matched_rows + other.matched_rows,
            bad_rows: self.bad_rows + other.bad_rows,
            bad_row_samples,
            total: self.total.checked_add(other.total)?,
            total_unblended: self.total_unblended.checked_add(other.total_unblended)?,
            out_of_scope: self.out_of_scope.checked_add(other.out_of_scope)?,
            cells: cells
                .into_iter()
                .map(|((region, service, category), cost)| {
                    let unblended_cost = cells_unblended
                        .get(&(region.clone(), service.clone(), category))
                        .copied()
                        .unwrap_or_default();
                    Cell {
                        region,
                        service,
                        category,
                        cost,
                        unblended_cost,
                    }
                })
                .collect(),
            transfers: transfers
                .into_iter()
                .map(|((from_region, to_region), cost)| Transfer {
                    from_region,
                    to_region,
                    cost,
                })
                .collect(),
            line_item_types: types.into_iter().collect(),
            drills,
        })
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Money {
    cost: Decimal,
    unblended: Decimal,
}

/// The decimal places of [`Amount::Fixed`]: amounts are integers of 10^-15 of the
/// currency unit. Every amount Data Exports writes has fewer places (CUR 2.0 and FOCUS
/// costs are decimals of at most 10 places, or doubles of at most 15 significant
/// digits); an amount with more is kept as a [`Decimal`] and summed as one.
pub(crate) const FIXED_SCALE: u32 = 15;

/// 10^0 ..= 10^15, as `i128`.
pub(crate) const POW10_I128: [i128; 16] = {
    let mut p = [1i128; 16];
    let mut i = 1;
    while i < 16 {
        p[i] = p[i - 1] * 10;
        i += 1;
    }
    p
};

/// One amount of money, exactly: an integer of 10^-[`FIXED_SCALE`] when it has at most
/// that many decimal places (added as one `i128` addition), else the decimal itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Amount {
    Fixed(i128),
    Exact(Decimal),
}

impl Amount {
    pub(crate) const ZERO: Amount = Amount::Fixed(0);

    /// `d`, as an integer of 10^-15 when it has at most 15 places and fits.
    #[inline]
    pub(crate) fn of(d: Decimal) -> Amount {
        let places = d.scale();
        if places <= FIXED_SCALE
            && let Some(n) = d
                .mantissa()
                .checked_mul(POW10_I128[(FIXED_SCALE - places) as usize])
        {
            return Amount::Fixed(n);
        }
        Amount::Exact(d)
    }

    /// The amount as a decimal (at the fewest places that hold it).
    #[cfg(test)]
    pub(crate) fn decimal(self) -> Result<Decimal, RowError> {
        match self {
            Amount::Fixed(n) => decimal_of_fixed(n),
            Amount::Exact(d) => Ok(d),
        }
    }
}

/// `n` · 10^-15 as a decimal, trailing zeros dropped (so that it fits in `Decimal`'s 96
/// bits whenever the value does).
fn decimal_of_fixed(mut n: i128) -> Result<Decimal, RowError> {
    let mut places = FIXED_SCALE;
    while places > 0 && n % 10 == 0 {
        n /= 10;
        places -= 1;
    }
    Decimal::try_from_i128_with_scale(n, places).map_err(|_| RowError::Overflow)
}

/// An exact running sum of [`Amount`]s: the fixed ones in one `i128`, any others as a
/// [`Decimal`].
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Sum {
    fixed: i128,
    exact: Decimal,
}

impl Sum {
    #[inline]
    pub(crate) fn add(&mut self, a: Amount) -> Result<(), RowError> {
        match a {
            Amount::Fixed(n) => {
                self.fixed = self.fixed.checked_add(n).ok_or(RowError::Overflow)?;
            }
            Amount::Exact(d) => self.exact = add(self.exact, d)?,
        }
        Ok(())
    }

    /// The sum as a decimal.
    pub(crate) fn value(&self) -> Result<Decimal, RowError> {
        add(decimal_of_fixed(self.fixed)?, self.exact)
    }
}

/// A key's sums while its file is read.
#[derive(Debug, Default, Clone, Copy)]
struct Sums {
    cost: Sum,
    unblended: Sum,
}

/// The streaming aggregator. Feed it files with [`Aggregator::read`], then
/// [`Aggregator::finish`].
#[derive(Debug)]
pub struct Aggregator {
    scope: Option<Scope>,
    drills: Vec<DrillWindow>,
    skip_bad_rows: bool,
    names: Names,
    classes: FastMap<(u32, u32), Class>,
    /// The current file's sums per key, folded into the cells at its end.
    groups: FastMap<Key, Sums>,
    tag_cache: FastMap<Box<[u8]>, bool>,
    files: Vec<FileStats>,
    rows: u64,
    matched_rows: u64,
    bad_rows: u64,
    bad_samples: Vec<BadRow>,
    total: Money,
    out_of_scope: Decimal,
    /// The current file's out-of-scope amounts, folded into `out_of_scope` at its end.
    out_of_scope_file: Sum,
    cells: FastMap<(u32, u32, Category), Money>,
    transfers: FastMap<(u32, u32), Decimal>,
    by_item_type: FastMap<u32, Decimal>,
    drill_costs: Vec<Decimal>,
}

impl Aggregator {
    /// A new aggregator: rows in `scope` only (all rows when `None`), the cost of each
    /// drill window, bad rows refused (or counted and skipped with `skip_bad_rows`).
    pub fn new(scope: Option<Scope>, drills: Vec<DrillWindow>, skip_bad_rows: bool) -> Self {
        let drill_costs = vec![Decimal::ZERO; drills.len()];
        Aggregator {
            scope,
            drills,
            skip_bad_rows,
            names: Names::default(),
            classes: FastMap::default(),
            groups: FastMap::default(),
            tag_cache: FastMap::default(),
            files: Vec::new(),
            rows: 0,
            matched_rows: 0,
            bad_rows: 0,
            bad_samples: Vec::new(),
            total: Money::default(),
            out_of_scope: Decimal::ZERO,
            out_of_scope_file: Sum::default(),
            cells: FastMap::default(),
            transfers: FastMap::default(),
            by_item_type: FastMap::default(),
            drill_costs,
        }
    }

    /// Reads one whole CSV file, its table told by its header. On error the aggregator
    /// must be dropped: nothing of a failed run is reported.
    pub fn read<R: Read>(
        &mut self,
        file: &str,
        source: R,
        compression: Compression,
    ) -> Result<&FileStats, ParseError> {
        self.read_table(file, source, compression, None)
    }

    /// [`Aggregator::read`] of a file that must hold `table` (from the manifest), when
    /// given.
    pub fn read_table<R: Read>(
        &mut self,
        file: &str,
        source: R,
        compression: Compression,
        table: Option<Table>,
    ) -> Result<&FileStats, ParseError> {
        match compression {
            Compression::Gzip => self.read_csv(
                file,
                flate2::read::MultiGzDecoder::new(TagSourceErrors(source)),
                table,
                "gzip CSV",
            ),
            Compression::None => self.read_csv(file, TagSourceErrors(source), table, "CSV"),
        }
    }

    fn read_csv<R: Read>(
        &mut self,
        file: &str,
        source: R,
        table: Option<Table>,
        format: &'static str,
    ) -> Result<&FileStats, ParseError> {
        let mut reader = ZeroCopyReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(256 * 1024)
            .from_reader(source);
        let io_error = |e: simd_csv::Error, line: u64| -> ParseError {
            match e.into_kind() {
                simd_csv::ErrorKind::Io(err) => {
                    let from_source = err.get_ref().is_some_and(|inner| inner.is::<SourceError>());
                    if from_source {
                        ParseError::Source {
                            file: file.to_owned(),
                            line,
                            source: err,
                        }
                    } else {
                        ParseError::Corrupt {
                            file: file.to_owned(),
                            line,
                            source: err,
                        }
                    }
                }
                other => ParseError::Corrupt {
                    file: file.to_owned(),
                    line,
                    source: io::Error::new(io::ErrorKind::InvalidData, format!("{other:?}")),
                },
            }
        };
        // The line a record starts on: one per record, plus the newlines quoted inside
        // it (the reader skips empty lines, which an export does not have).
        let lines_in = |rec: &ZeroCopyByteRecord<'_>| {
            1 + memchr::memchr_iter(b'\n', rec.as_slice()).count() as u64
        };
        let (cols, mut next_line) = match reader.read_byte_record() {
            Err(e) => return Err(io_error(e, 1)),
            Ok(None) => {
                return Err(ParseError::Empty {
                    file: file.to_owned(),
                });
            }
            Ok(Some(header)) => {
                let names: Vec<Cow<'_, [u8]>> = (0..header.len())
                    .filter_map(|i| header.unescape(i))
                    .collect();
                (
                    Columns::from_header(&names, file, table)?,
                    1 + lines_in(&header),
                )
            }
        };
        let mut rows = 0u64;
        let mut line = 1u64;
        loop {
            let record = match reader.read_byte_record() {
                Ok(Some(record)) => record,
                Ok(None) => break,
                Err(e) => return Err(io_error(e, next_line)),
            };
            line = next_line;
            next_line += lines_in(&record);
            rows += 1;
            match self.row(&cols, &record) {
                Ok(()) => {}
                Err(RowError::Overflow) => {
                    return Err(ParseError::Overflow {
                        file: file.to_owned(),
                        at: RowAt::Line { line },
                    });
                }
                Err(RowError::Defect(defect)) => {
                    self.bad_row(file, RowAt::Line { line }, defect)?
                }
            }
        }
        self.file_done(
            file,
            rows,
            cols.net.is_some(),
            cols.table,
            format,
            RowAt::Line { line },
        )
    }

    /// A bad row: refused (the error names the file and line or row), or counted and
    /// quoted with `skip_bad_rows`.
    pub(crate) fn bad_row(
        &mut self,
        file: &str,
        at: RowAt,
        defect: Defect,
    ) -> Result<(), ParseError> {
        if !self.skip_bad_rows {
            return Err(ParseError::BadRow {
                file: file.to_owned(),
                at,
                defect,
            });
        }
        self.bad_rows += 1;
        if self.bad_samples.len() < MAX_QUOTED_BAD_ROWS {
            self.bad_samples.push(BadRow {
                file: file.to_owned(),
                at,
                defect: defect.to_string(),
            });
        }
        Ok(())
    }

    /// A file read to its end (`last`: where its last row is, named if its sums
    /// overflow).
    pub(crate) fn file_done(
        &mut self,
        file: &str,
        rows: u64,
        net_column: bool,
        table: Table,
        format: &'static str,
        last: RowAt,
    ) -> Result<&FileStats, ParseError> {
        self.fold_groups().map_err(|_| ParseError::Overflow {
            file: file.to_owned(),
            at: last,
        })?;
        self.rows += rows;
        self.files.push(FileStats {
            file: file.to_owned(),
            rows,
            net_column,
            table,
            format,
        });
        // Just pushed: `last` is always there.
        self.files.last().ok_or(ParseError::Empty {
            file: file.to_owned(),
        })
    }

    /// The workload scope, if any.
    pub(crate) fn scope(&self) -> Option<&Scope> {
        self.scope.as_ref()
    }

    /// Whether rows' start times are needed (drills are costed).
    pub(crate) fn needs_start(&self) -> bool {
        !self.drills.is_empty()
    }

    /// Whether resource ids are needed (a scope or drills).
    pub(crate) fn needs_resource(&self) -> bool {
        self.scope.is_some() || !self.drills.is_empty()
    }

    fn row(&mut self, cols: &Columns, rec: &ZeroCopyByteRecord<'_>) -> Result<(), RowError> {
        if rec.len() != cols.width {
            return Err(RowError::Defect(Defect::WrongColumnCount {
                expected: cols.width,
                found: rec.len(),
            }));
        }
        // Unescaped only when quoted (borrowed from the reader's buffer otherwise).
        let field = |i: usize| rec.unescape(i).unwrap_or_default();
        let unblended = money(&field(cols.unblended), cols.table.names().unblended)?;
        let cost = match cols.net.map(field) {
            Some(net) if !net.is_empty() => money(&net, NET_COLUMN)?,
            _ => unblended,
        };
        let resource = field(cols.resource);
        let in_scope = match &self.scope {
            None => true,
            Some(scope) => {
                scope.matches_resource(&resource) || {
                    let tags = field(cols.tags);
                    match self.tag_cache.get(&*tags) {
                        Some(&hit) => hit,
                        None => {
                            let hit = scope.matches_json_tags(&tags);
                            if self.tag_cache.len() < MAX_TAG_CACHE {
                                self.tag_cache.insert((*tags).into(), hit);
                            }
                            hit
                        }
                    }
                }
            }
        };
        let start = if self.needs_start() {
            field(cols.start)
        } else {
            Cow::Borrowed(&[][..])
        };
        let (region, product) = (field(cols.region), field(cols.product));
        let (usage_type, item_type) = (field(cols.usage_type), field(cols.item_type));
        let from_region = cols.from_region.map(field).unwrap_or_default();
        let to_region = cols.to_region.map(field).unwrap_or_default();
        self.add(&Fields {
            cost,
            unblended,
            in_scope,
            start: Start::Text(&start),
            region: &region,
            product: &product,
            usage_type: &usage_type,
            item_type: &item_type,
            from_region: &from_region,
            to_region: &to_region,
            resource: &resource,
        })
    }

    /// Adds one row, whatever its source format.
    pub(crate) fn add(&mut self, f: &Fields<'_>) -> Result<(), RowError> {
        let (cost, unblended, in_scope) = (f.cost, f.unblended, f.in_scope);
        if !in_scope {
            return self.add_out_of_scope(cost);
        }
        // Timestamps are parsed only when drills are costed.
        let hour = if self.drills.is_empty() {
            0
        } else {
            f.start.hour_ms()?
        };
        let names = &mut self.names;
        let key = Key {
            region: names.region(f.region),
            service: names.service(f.product),
            usage: names.usage(f.usage_type),
            item: names.item(f.item_type),
            from: names.end_region(f.from_region),
            to: names.end_region(f.to_region),
        };
        self.add_keyed(key, Amount::of(cost), Amount::of(unblended))?;
        if !self.drills.is_empty() {
            let resource = f.resource;
            for (drill, sum) in self.drills.iter().zip(self.drill_costs.iter_mut()) {
                if drill.covers(hour, resource) {
                    *sum = add(*sum, cost)?;
                }
            }
        }
        Ok(())
    }

    /// The cost of a row outside the scope.
    #[inline]
    pub(crate) fn add_out_of_scope(&mut self, cost: Decimal) -> Result<(), RowError> {
        self.add_out_of_scope_amount(Amount::of(cost))
    }

    /// Adds one row outside the scope as an [`Amount`] (summed in fixed point, folded
    /// into the total when the file ends).
    #[inline]
    pub(crate) fn add_out_of_scope_amount(&mut self, cost: Amount) -> Result<(), RowError> {
        self.out_of_scope_file.add(cost)?;
        Ok(())
    }

    /// Adds one row in scope by its key (drills aside: [`Aggregator::add`] costs them).
    #[inline]
    pub(crate) fn add_keyed(
        &mut self,
        key: Key,
        cost: Amount,
        unblended: Amount,
    ) -> Result<(), RowError> {
        self.matched_rows += 1;
        let sums = self.groups.entry(key).or_default();
        sums.cost.add(cost)?;
        sums.unblended.add(unblended)?;
        Ok(())
    }

    /// The interned names, for a source that maps its values to ids itself.
    pub(crate) fn names(&mut self) -> &mut Names {
        &mut self.names
    }

    /// Folds the current file's sums per key into the cells, transfers, line item types
    /// and totals: the category and transfer pair are worked out once per key.
    fn fold_groups(&mut self) -> Result<(), RowError> {
        let outside = std::mem::take(&mut self.out_of_scope_file);
        self.out_of_scope = add(self.out_of_scope, outside.value()?)?;
        let mut groups: Vec<(Key, Sums)> = self.groups.drain().collect();
        // Sums are exact, so the order does not change them; sorted all the same, so
        // that nothing downstream can depend on the hash order.
        groups.sort_by_key(|(k, _)| (k.region, k.service, k.usage, k.item, k.from, k.to));
        for (key, sums) in groups {
            let sums = Money {
                cost: sums.cost.value()?,
                unblended: sums.unblended.value()?,
            };
            let class = self.class(key.service, key.usage);
            let (category, pair) =
                if key.from != NO_REGION && key.to != NO_REGION && key.from != key.to {
                    (Category::Network, Some((key.from, key.to)))
                } else {
                    (class.category, class.transfer)
                };
            self.total.cost = add(self.total.cost, sums.cost)?;
            self.total.unblended = add(self.total.unblended, sums.unblended)?;
            let cell = self
                .cells
                .entry((key.region, key.service, category))
                .or_default();
            cell.cost = add(cell.cost, sums.cost)?;
            cell.unblended = add(cell.unblended, sums.unblended)?;
            if let Some(pair) = pair {
                let t = self.transfers.entry(pair).or_default();
                *t = add(*t, sums.cost)?;
            }
            let by_type = self.by_item_type.entry(key.item).or_default();
            *by_type = add(*by_type, sums.cost)?;
        }
        Ok(())
    }

    /// The category (and the pair its usage type names, if any) of a service and usage
    /// type.
    fn class(&mut self, service: u32, usage: u32) -> Class {
        if let Some(c) = self.classes.get(&(service, usage)) {
            return *c;
        }
        let names = &mut self.names;
        let product = names.services.name(service).to_owned();
        let usage_name = names.usage_types.name(usage).to_owned();
        let transfer = transfer_pair(&usage_name).map(|(a, b)| {
            (
                names.regions.id(a.as_bytes()),
                names.regions.id(b.as_bytes()),
            )
        });
        let c = Class {
            category: if transfer.is_some() {
                Category::Network
            } else {
                classify(&product, &usage_name)
            },
            transfer,
        };
        self.classes.insert((service, usage), c);
        c
    }

    /// The aggregates, names resolved and sorted (deterministic output).
    pub fn finish(self) -> Aggregates {
        let mut cells: Vec<Cell> = self
            .cells
            .iter()
            .map(|(&(r, s, category), m)| Cell {
                region: self.names.regions.name(r).to_owned(),
                service: self.names.services.name(s).to_owned(),
                category,
                cost: m.cost,
                unblended_cost: m.unblended,
            })
            .collect();
        cells.sort_by(|a, b| {
            (&a.region, &a.service, a.category).cmp(&(&b.region, &b.service, b.category))
        });
        let mut transfers: Vec<Transfer> = self
            .transfers
            .iter()
            .map(|(&(a, b), &cost)| Transfer {
                from_region: self.names.regions.name(a).to_owned(),
                to_region: self.names.regions.name(b).to_owned(),
                cost,
            })
            .collect();
        transfers
            .sort_by(|a, b| (&a.from_region, &a.to_region).cmp(&(&b.from_region, &b.to_region)));
        let mut line_item_types: Vec<(String, Decimal)> = self
            .by_item_type
            .iter()
            .map(|(&t, &c)| (self.names.item_types.name(t).to_owned(), c))
            .collect();
        line_item_types.sort();
        let drills = self
            .drills
            .iter()
            .zip(self.drill_costs)
            .map(|(d, c)| (d.id.clone(), c))
            .collect();
        Aggregates {
            files: self.files,
            rows: self.rows,
            matched_rows: self.matched_rows,
            bad_rows: self.bad_rows,
            bad_row_samples: self.bad_samples,
            total: self.total.cost,
            total_unblended: self.total.unblended,
            out_of_scope: self.out_of_scope,
            cells,
            transfers,
            line_item_types,
            drills,
        }
    }
}

/// One row's fields, borrowed from the source (a CSV record or Parquet column batches).
pub(crate) struct Fields<'a> {
    pub(crate) cost: Decimal,
    pub(crate) unblended: Decimal,
    pub(crate) in_scope: bool,
    pub(crate) start: Start<'a>,
    pub(crate) region: &'a [u8],
    pub(crate) product: &'a [u8],
    pub(crate) usage_type: &'a [u8],
    pub(crate) item_type: &'a [u8],
    pub(crate) from_region: &'a [u8],
    pub(crate) to_region: &'a [u8],
    pub(crate) resource: &'a [u8],
}

/// A row's usage start: text (CSV, or a string column), a Parquet timestamp in Unix ms,
/// or not read (no drills to cost).
pub(crate) enum Start<'a> {
    Text(&'a [u8]),
    Millis(i64),
    Null,
}

impl Start<'_> {
    fn hour_ms(&self) -> Result<u64, RowError> {
        let bad = |value: String| RowError::Defect(Defect::BadTimestamp { value });
        match self {
            Start::Text(t) => hour_ms(t).ok_or_else(|| bad(excerpt(t))),
            Start::Millis(ms) => u64::try_from(*ms)
                .map(|ms| ms - ms % 3_600_000)
                .map_err(|_| bad(ms.to_string())),
            Start::Null => Err(bad(String::new())),
        }
    }
}

#[derive(Debug)]
pub(crate) enum RowError {
    Defect(Defect),
    Overflow,
}

pub(crate) fn add(a: Decimal, b: Decimal) -> Result<Decimal, RowError> {
    a.checked_add(b).ok_or(RowError::Overflow)
}

pub(crate) fn excerpt(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    s.chars().take(40).collect()
}

/// Parses a money field: empty is zero; plain or scientific notation, exact.
pub(crate) fn money(b: &[u8], column: &'static str) -> Result<Decimal, RowError> {
    if b.is_empty() {
        return Ok(Decimal::ZERO);
    }
    let bad = || {
        RowError::Defect(Defect::NotANumber {
            column,
            value: excerpt(b),
        })
    };
    let s = std::str::from_utf8(b).map_err(|_| bad())?;
    Decimal::from_str(s)
        .or_else(|_| Decimal::from_scientific(s))
        .map_err(|_| bad())
}

/// The start of the hour of a CUR timestamp (`2026-10-05T03:00:00Z`,
/// `2026-10-05T03:00:00.000Z` or `2026-10-05 03:00:00`), Unix ms.
pub fn hour_ms(b: &[u8]) -> Option<u64> {
    if b.len() < 13 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b' ')) {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b.get(from..to)?.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let (year, month, day, hour) = (num(0, 4)?, num(5, 7)?, num(8, 10)?, num(11, 13)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    u64::try_from(days * 86_400_000 + i64::from(hour) * 3_600_000).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const HEADER: &str = "identity_line_item_id,line_item_usage_start_date,line_item_product_code,line_item_usage_type,line_item_line_item_type,line_item_unblended_cost,line_item_net_unblended_cost,product_region_code,product_from_region_code,product_to_region_code,line_item_resource_id,resource_tags";

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn csv(rows: &[&str]) -> String {
        let mut s = String::from(HEADER);
        for r in rows {
            s.push('\n');
            s.push_str(r);
        }
        s.push('\n');
        s
    }

    fn gz(text: &str) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    }

    fn scope() -> Scope {
        Scope {
            tag_key: "user_lifeboat_workload".into(),
            workload: "checkout".into(),
            resources: ["checkout-db".to_owned()].into_iter().collect(),
        }
    }

    #[test]
    fn amounts_sum_exactly_in_fixed_point_and_beyond_it() {
        // At most 15 places: fixed point; more places, or too large to scale: a Decimal.
        assert_eq!(
            Amount::of(d("0.0960000000")),
            Amount::Fixed(96_000_000_000_000)
        );
        assert_eq!(Amount::of(d("-3")), Amount::Fixed(-3_000_000_000_000_000));
        let fine = d("0.0000000000000000123");
        assert_eq!(Amount::of(fine), Amount::Exact(fine));
        let huge = d("79228162514264337593543950335");
        assert_eq!(Amount::of(huge), Amount::Exact(huge));
        let mut sum = Sum::default();
        for a in [
            "0.1",
            "0.2",
            "-0.05",
            "1.0000000001",
            "0.0000000000000000123",
        ] {
            sum.add(Amount::of(d(a))).unwrap();
        }
        assert_eq!(sum.value().unwrap(), d("1.2500000001000000123"));
        // The sum leaves its trailing zeros, so a value Decimal holds is held.
        let mut big = Sum::default();
        big.add(Amount::of(d("50000000000000"))).unwrap();
        big.add(Amount::of(d("50000000000000"))).unwrap();
        assert_eq!(big.value().unwrap(), d("100000000000000"));
        assert_eq!(
            Amount::Fixed(1_500_000_000_000_000).decimal().unwrap(),
            d("1.5")
        );
        // Past what a Decimal holds: overflow, never a wrong total.
        let mut over = Sum::default();
        over.add(Amount::Fixed(i128::MAX)).unwrap();
        assert!(matches!(
            over.add(Amount::Fixed(1)),
            Err(RowError::Overflow)
        ));
        assert!(matches!(over.value(), Err(RowError::Overflow)));
    }

    #[test]
    fn aggregates_exactly_by_region_service_category_and_pair() {
        let text = csv(&[
            r#"1,2026-10-01T00:00:00Z,AmazonEC2,USE1-BoxUsage:m5.large,Usage,0.0960000000,,us-east-1,,,i-1,"{""user_lifeboat_workload"":""checkout""}""#,
            r#"2,2026-10-01T01:00:00Z,AmazonEC2,USE1-BoxUsage:m5.large,Usage,0.0960000000,0.0900000000,us-east-1,,,i-1,"{""user_lifeboat_workload"":""checkout""}""#,
            r#"3,2026-10-01T01:00:00Z,AmazonRDS,EUW1-InstanceUsage:db.r6g.large,Usage,0.2,,eu-west-1,,,arn:aws:rds:eu-west-1:1:db:checkout-db,"#,
            r#"4,2026-10-01T01:00:00Z,AWSDataTransfer,USE1-EUW1-AWS-Out-Bytes,Usage,0.02,,us-east-1,us-east-1,eu-west-1,,"{""user_lifeboat_workload"":""checkout""}""#,
            r#"5,2026-10-01T01:00:00Z,AmazonEC2,USE1-BoxUsage:m5.large,Usage,5,,us-east-1,,,i-other,"{""user_lifeboat_workload"":""other""}""#,
            r#"6,2026-10-01T01:00:00Z,AmazonRoute53,HostedZone,Usage,0.5,,,,,Z1,"{""user_lifeboat_workload"":""checkout""}""#,
            r#"7,2026-10-01T01:00:00Z,AmazonS3,EUW1-APS1-AWS-Out-Bytes,Usage,1.5E-3,,eu-west-1,,,checkout-receipts,"{""user_lifeboat_workload"":""checkout""}""#,
        ]);
        let mut agg = Aggregator::new(Some(scope()), vec![], false);
        let stats = agg
            .read("f.csv.gz", gz(&text).as_slice(), Compression::Gzip)
            .unwrap()
            .clone();
        assert_eq!(stats.rows, 7);
        assert!(stats.net_column);
        let a = agg.finish();
        assert_eq!(a.matched_rows, 6);
        assert_eq!(
            a.total,
            d("0.096") + d("0.09") + d("0.2") + d("0.02") + d("0.5") + d("0.0015")
        );
        assert_eq!(
            a.total_unblended,
            d("0.096") * d("2") + d("0.2") + d("0.02") + d("0.5") + d("0.0015")
        );
        assert_eq!(a.out_of_scope, d("5"));
        let cell = |r: &str, s: &str, c: Category| {
            a.cells
                .iter()
                .find(|x| x.region == r && x.service == s && x.category == c)
                .map(|x| x.cost)
        };
        assert_eq!(
            cell("us-east-1", "AmazonEC2", Category::Compute),
            Some(d("0.186"))
        );
        assert_eq!(
            cell("eu-west-1", "AmazonRDS", Category::Database),
            Some(d("0.2"))
        );
        assert_eq!(
            cell("global", "AmazonRoute53", Category::Network),
            Some(d("0.5"))
        );
        assert_eq!(
            cell("eu-west-1", "AmazonS3", Category::Network),
            Some(d("0.0015"))
        );
        assert_eq!(
            a.transfers,
            vec![
                Transfer {
                    from_region: "eu-west-1".into(),
                    to_region: "ap-southeast-1".into(),
                    cost: d("0.0015")
                },
                Transfer {
                    from_region: "us-east-1".into(),
                    to_region: "eu-west-1".into(),
                    cost: d("0.02")
                },
            ]
        );
    }

    #[test]
    fn names_every_missing_column() {
        let text = "line_item_usage_start_date,line_item_product_code,line_item_unblended_cost\n";
        let mut agg = Aggregator::new(None, vec![], false);
        let err = agg
            .read("cur/x.csv", text.as_bytes(), Compression::None)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cur/x.csv: missing required column(s): line_item_usage_type, line_item_line_item_type, product_region_code, product_from_region_code, product_to_region_code, line_item_resource_id, resource_tags"
        );
    }

    #[test]
    fn bad_rows_name_the_line_or_are_counted() {
        let text = csv(&[
            "1,2026-10-01T00:00:00Z,AmazonEC2,BoxUsage,Usage,1,,us-east-1,,,i-1,",
            "2,2026-10-01T00:00:00Z,AmazonEC2,BoxUsage,Usage,abc,,us-east-1,,,i-1,",
            "3,2026-10-01T00:00:00Z,AmazonEC2,BoxUsage,Usage,1,,us-east-1,,i-1,",
            "4,2026-10-01T00:00:00Z,AmazonEC2,BoxUsage,Usage,2,,us-east-1,,,i-1,",
        ]);
        let mut agg = Aggregator::new(None, vec![], false);
        let err = agg
            .read("a.csv", text.as_bytes(), Compression::None)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "a.csv: line 3: line_item_unblended_cost is not a number: `abc`"
        );
        let mut agg = Aggregator::new(None, vec![], true);
        agg.read("a.csv", text.as_bytes(), Compression::None)
            .unwrap();
        let a = agg.finish();
        assert_eq!(a.bad_rows, 2);
        assert_eq!(a.total, d("3"));
        assert_eq!(a.bad_row_samples[1].at, RowAt::Line { line: 4 });
        assert_eq!(a.bad_row_samples[1].defect, "expected 12 columns, found 11");
    }

    /// RFC 4180 as exports write it: a BOM before the header, CRLF line ends, quoted
    /// fields holding commas, doubled quotes and a newline (the lines after it are
    /// still named right), and quoted money, Regions and codes.
    #[test]
    fn quoted_fields_crlf_and_a_bom_are_read_as_written() {
        let rows = [
            r#"1,2026-10-01T00:00:00Z,AmazonEC2,BoxUsage,Usage,"1.5",,"us-east-1",,,i-1,"{""user_lifeboat_workload"":""checkout"",""note"":""a,b""}""#,
            "2,2026-10-01T00:00:00Z,\"AmazonRDS\",InstanceUsage,Usage,2,,eu-west-1,,,db-1,\"{\"\"user_lifeboat_workload\"\":\"\"line\none\"\"}\"",
            "3,2026-10-01T00:00:00Z,AmazonEC2,BoxUsage,Usage,abc,,us-east-1,,,i-3,",
            r#"4,2026-10-01T00:00:00Z,AmazonEC2,BoxUsage,Usage,4,"",us-east-1,,,checkout-db,"#,
        ];
        let text = format!("\u{feff}{}\r\n{}\r\n", HEADER, rows.join("\r\n"));
        let mut agg = Aggregator::new(Some(scope()), vec![], true);
        agg.read("q.csv", text.as_bytes(), Compression::None)
            .unwrap();
        let a = agg.finish();
        assert_eq!(a.bad_rows, 1);
        // Row 3 starts on line 5: the header, rows 1 and 2, and the newline in row 2.
        assert_eq!(a.bad_row_samples[0].at, RowAt::Line { line: 5 });
        // Row 1 by its tag (the quoted comma kept in the JSON), row 4 by its resource;
        // row 2's tag names another workload.
        assert_eq!(a.total, d("5.5"));
        assert_eq!(a.out_of_scope, d("2"));
        let cells: Vec<(&str, &str)> = a
            .cells
            .iter()
            .map(|c| (c.region.as_str(), c.service.as_str()))
            .collect();
        assert_eq!(cells, [("us-east-1", "AmazonEC2")]);
    }

    #[test]
    fn truncated_gzip_is_corrupt_not_a_source_failure() {
        let rows: Vec<String> = (0..2000)
            .map(|i| {
                format!(
                    "{i},2026-10-01T00:00:00Z,AmazonEC2,BoxUsage,Usage,1.{i},,us-east-1,,,i-{i},"
                )
            })
            .collect();
        let refs: Vec<&str> = rows.iter().map(String::as_str).collect();
        let bytes = gz(&csv(&refs));
        let cut = &bytes[..bytes.len() / 2];
        let mut agg = Aggregator::new(None, vec![], true);
        let err = agg.read("t.csv.gz", cut, Compression::Gzip).unwrap_err();
        assert!(matches!(err, ParseError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().starts_with("t.csv.gz: line "), "{err}");
    }

    #[test]
    fn source_failures_are_told_apart() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"))
            }
        }
        let mut agg = Aggregator::new(None, vec![], false);
        let err = agg
            .read("n.csv.gz", Failing, Compression::Gzip)
            .unwrap_err();
        assert!(matches!(err, ParseError::Source { .. }), "{err:?}");
    }

    #[test]
    fn drills_cost_their_window_and_resources() {
        let text = csv(&[
            "1,2026-10-05T02:00:00Z,AmazonEC2,BoxUsage,Usage,1,,us-east-1,,,i-1,",
            "2,2026-10-05T03:00:00Z,AmazonEC2,BoxUsage,Usage,2,,us-east-1,,,i-1,",
            "3,2026-10-05T03:00:00Z,AmazonRDS,InstanceUsage,Usage,4,,eu-west-1,,,arn:aws:rds:eu-west-1:1:db:checkout-db,",
            "4,2026-10-05T04:00:00Z,AmazonEC2,BoxUsage,Usage,8,,us-east-1,,,i-1,",
        ]);
        let start = hour_ms(b"2026-10-05T03:00:00Z").unwrap() + 10 * 60_000;
        let drills = vec![
            DrillWindow {
                id: "all".into(),
                start_ms: start,
                end_ms: start + 30 * 60_000,
                resources: HashSet::new(),
            },
            DrillWindow {
                id: "db".into(),
                start_ms: start,
                end_ms: start + 30 * 60_000,
                resources: ["checkout-db".to_owned()].into_iter().collect(),
            },
        ];
        let mut agg = Aggregator::new(None, drills, false);
        agg.read("d.csv", text.as_bytes(), Compression::None)
            .unwrap();
        let a = agg.finish();
        assert_eq!(
            a.drills,
            vec![("all".to_owned(), d("6")), ("db".to_owned(), d("4"))]
        );
    }

    #[test]
    fn classifies_and_parses_dates() {
        assert_eq!(
            classify("AmazonEC2", "USE1-EBS:VolumeUsage.gp3"),
            Category::Storage
        );
        assert_eq!(
            classify("AmazonEC2", "USE1-NatGateway-Hours"),
            Category::Network
        );
        assert_eq!(
            classify("AmazonElastiCache", "NodeUsage:cache.r6g.large"),
            Category::Cache
        );
        assert_eq!(classify("AWSSupportBusiness", "Dollar"), Category::Other);
        assert_eq!(
            transfer_pair("USE1-EUW1-AWS-Out-Bytes"),
            Some(("us-east-1", "eu-west-1"))
        );
        assert_eq!(
            transfer_pair("EUW1-USE1-AWS-In-Bytes"),
            Some(("us-east-1", "eu-west-1"))
        );
        assert_eq!(transfer_pair("USE1-DataTransfer-Out-Bytes"), None);
        assert_eq!(
            hour_ms(b"1970-01-02T01:59:59Z"),
            Some(86_400_000 + 3_600_000)
        );
        assert_eq!(hour_ms(b"2026-11-23 20:00:00"), Some(1_795_464_000_000));
        assert_eq!(hour_ms(b"2026-13-01T00"), None);
    }
}
