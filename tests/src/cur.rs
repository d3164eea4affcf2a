//! A seeded CUR 2.0 generator: realistic columns, usage types, Regions and tags, written
//! as CSV (optionally gzip), with the expected sums computed **while generating**, from
//! the generator's own catalog (each line item knows its category and Region pair), not
//! by re-reading the file and not with cost-reporter's classification code.

use std::collections::BTreeMap;
use std::io::{self, Write};

use rust_decimal::Decimal;

/// The CUR 2.0 columns written (a realistic subset of the ~125, in export order).
pub const HEADER: &[&str] = &[
    "bill_bill_type",
    "bill_billing_entity",
    "bill_billing_period_end_date",
    "bill_billing_period_start_date",
    "bill_invoice_id",
    "bill_invoicing_entity",
    "bill_payer_account_id",
    "bill_payer_account_name",
    "cost_category",
    "discount",
    "identity_line_item_id",
    "identity_time_interval",
    "line_item_availability_zone",
    "line_item_blended_cost",
    "line_item_blended_rate",
    "line_item_currency_code",
    "line_item_legal_entity",
    "line_item_line_item_description",
    "line_item_line_item_type",
    "line_item_net_unblended_cost",
    "line_item_normalization_factor",
    "line_item_normalized_usage_amount",
    "line_item_operation",
    "line_item_product_code",
    "line_item_resource_id",
    "line_item_tax_type",
    "line_item_unblended_cost",
    "line_item_unblended_rate",
    "line_item_usage_account_id",
    "line_item_usage_account_name",
    "line_item_usage_amount",
    "line_item_usage_end_date",
    "line_item_usage_start_date",
    "line_item_usage_type",
    "pricing_currency",
    "pricing_public_on_demand_cost",
    "pricing_public_on_demand_rate",
    "pricing_purchase_option",
    "pricing_term",
    "pricing_unit",
    "product",
    "product_comment",
    "product_from_location",
    "product_from_region_code",
    "product_instance_family",
    "product_instance_type",
    "product_location",
    "product_location_type",
    "product_product_family",
    "product_region_code",
    "product_servicecode",
    "product_sku",
    "product_to_location",
    "product_to_region_code",
    "product_usagetype",
    "reservation_reservation_a_r_n",
    "resource_tags",
    "savings_plan_savings_plan_a_r_n",
];

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenSpec {
    /// PRNG seed: same seed, same file.
    pub seed: u64,
    /// Data rows.
    pub rows: u64,
    /// Billing month, `(year, month)`.
    pub period: (i32, u32),
    /// The workload whose tag marks its resources.
    pub workload: String,
    /// The `resource_tags` key of that tag.
    pub tag_key: String,
    /// The workload's Regions.
    pub regions: Vec<String>,
    /// Untagged DB instances the spec names, per Region: `(region, instance id)`.
    pub spec_databases: Vec<(String, String)>,
    /// Drills to cost.
    pub drills: Vec<GenDrill>,
    /// Whether to write `line_item_net_unblended_cost` values (the column is always
    /// there; empty otherwise).
    pub net_costs: bool,
    /// Write some costs in scientific notation (`1.5E-7`), as CUR sometimes does.
    pub scientific: bool,
}

/// A drill window in hours of the month, with the resources it names (empty: all).
#[derive(Debug, Clone)]
pub struct GenDrill {
    /// Run id.
    pub id: String,
    /// First hour (0-based from the month's start) it touches.
    pub first_hour: u32,
    /// Hour it ends in, exclusive.
    pub end_hour: u32,
    /// Resource names (not ARNs) it names.
    pub resources: Vec<String>,
}

impl GenSpec {
    /// The example `checkout` workload over its three Regions.
    pub fn checkout(seed: u64, rows: u64) -> GenSpec {
        GenSpec {
            seed,
            rows,
            period: (2026, 10),
            workload: "checkout".into(),
            tag_key: "user_lifeboat_workload".into(),
            regions: vec![
                "us-east-1".into(),
                "eu-west-1".into(),
                "ap-southeast-1".into(),
            ],
            spec_databases: vec![
                ("us-east-1".into(), "checkout-db".into()),
                ("eu-west-1".into(), "checkout-db-replica-euw1".into()),
                ("ap-southeast-1".into(), "checkout-db-replica-apse1".into()),
            ],
            drills: vec![],
            net_costs: true,
            scientific: true,
        }
    }
}

/// The sums the report must show, computed while generating.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// Data rows.
    pub rows: u64,
    /// Rows of the workload.
    pub matched_rows: u64,
    /// Cost of the workload (net where written, else unblended).
    pub total: Decimal,
    /// Unblended cost of the workload.
    pub total_unblended: Decimal,
    /// Cost of every row (the whole bill).
    pub bill_total: Decimal,
    /// Cost of the rest of the bill.
    pub out_of_scope: Decimal,
    /// Workload cost per Region (`global` for Region-less rows).
    pub by_region: BTreeMap<String, Decimal>,
    /// Whole-bill cost per Region.
    pub bill_by_region: BTreeMap<String, Decimal>,
    /// Workload cost per (Region, category).
    pub by_region_category: BTreeMap<(String, String), Decimal>,
    /// Workload inter-Region transfer per (from, to).
    pub transfers: BTreeMap<(String, String), Decimal>,
    /// Workload cost of Region-less services.
    pub global_services: BTreeMap<String, Decimal>,
    /// Drill costs by id.
    pub drills: BTreeMap<String, Decimal>,
}

/// splitmix64: small, seeded, good enough for test data.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let i = usize::try_from(self.below(items.len() as u64)).unwrap_or(0);
        &items[i.min(items.len() - 1)]
    }
}

/// One kind of line item, with its category decided here, by the catalog.
struct Item {
    product: &'static str,
    /// Usage type after the Region prefix.
    usage: &'static str,
    category: &'static str,
    family: &'static str,
    /// Billed without a Region (global service).
    global: bool,
    /// Inter-Region transfer to another Region.
    transfer: bool,
    /// The resource is the spec's DB instance (an ARN), untagged.
    spec_db: bool,
}

const CATALOG: &[Item] = &[
    item(
        "AmazonEC2",
        "BoxUsage:m6g.large",
        "compute",
        "Compute Instance",
    ),
    item(
        "AmazonEC2",
        "BoxUsage:c7g.xlarge",
        "compute",
        "Compute Instance",
    ),
    item("AmazonEC2", "EBS:VolumeUsage.gp3", "storage", "Storage"),
    item("AmazonEC2", "NatGateway-Hours", "network", "NAT Gateway"),
    item("AWSLambda", "Lambda-GB-Second", "compute", "Serverless"),
    item(
        "AmazonECS",
        "Fargate-vCPU-Hours:perCPU",
        "compute",
        "Compute",
    ),
    item(
        "AmazonElastiCache",
        "NodeUsage:cache.r6g.large",
        "cache",
        "Cache Instance",
    ),
    item(
        "AmazonDynamoDB",
        "TimedStorage-ByteHrs",
        "database",
        "Database Storage",
    ),
    item("AmazonS3", "TimedStorage-ByteHrs", "storage", "Storage"),
    item("AmazonS3", "Requests-Tier1", "storage", "API Request"),
    item("AWSELB", "LoadBalancerUsage", "network", "Load Balancer"),
    item(
        "AmazonCloudWatch",
        "CW:MetricMonitorUsage",
        "other",
        "Metric",
    ),
    item(
        "AWSSecretsManager",
        "AWSSecretsManager-Secrets",
        "other",
        "Secret",
    ),
    Item {
        product: "AmazonRDS",
        usage: "InstanceUsage:db.r6g.large",
        category: "database",
        family: "Database Instance",
        global: false,
        transfer: false,
        spec_db: true,
    },
    Item {
        product: "AmazonRoute53",
        usage: "HostedZone",
        category: "network",
        family: "DNS Zone",
        global: true,
        transfer: false,
        spec_db: false,
    },
    Item {
        product: "AmazonCloudFront",
        usage: "US-DataTransfer-Out-Bytes",
        category: "network",
        family: "Data Transfer",
        global: true,
        transfer: false,
        spec_db: false,
    },
    Item {
        product: "AmazonEC2",
        usage: "AWS-Out-Bytes",
        category: "network",
        family: "Data Transfer",
        global: false,
        transfer: true,
        spec_db: false,
    },
    Item {
        product: "AmazonS3",
        usage: "AWS-Out-Bytes",
        category: "network",
        family: "Data Transfer",
        global: false,
        transfer: true,
        spec_db: false,
    },
];

const fn item(
    product: &'static str,
    usage: &'static str,
    category: &'static str,
    family: &'static str,
) -> Item {
    Item {
        product,
        usage,
        category,
        family,
        global: false,
        transfer: false,
        spec_db: false,
    }
}

fn prefix(region: &str) -> &'static str {
    match region {
        "us-east-1" => "USE1",
        "us-east-2" => "USE2",
        "us-west-2" => "USW2",
        "eu-west-1" => "EUW1",
        "eu-central-1" => "EUC1",
        "ap-southeast-1" => "APS1",
        "ap-northeast-1" => "APN1",
        _ => "USE1",
    }
}

/// Another team's Region and workload, so the scope has something to exclude.
const OTHER_REGIONS: &[&str] = &["us-west-2", "eu-central-1", "us-east-1"];

fn add(map: &mut BTreeMap<String, Decimal>, key: &str, v: Decimal) {
    *map.entry(key.to_owned()).or_default() += v;
}

fn days_in(year: i32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Writes the CSV (header + `spec.rows` rows) and returns the expected sums.
pub fn generate<W: Write>(spec: &GenSpec, out: W) -> io::Result<Expected> {
    let mut w = csv::WriterBuilder::new().from_writer(out);
    w.write_record(HEADER)?;
    let e = rows(spec, |r| w.write_record(&r.cur).map_err(io::Error::from))?;
    w.flush()?;
    Ok(e)
}

/// One generated line item: its CUR 2.0 CSV record, and what the other shapes need.
#[derive(Debug, Clone)]
pub struct GenRow {
    /// The CUR 2.0 record, in [`HEADER`] order.
    pub cur: Vec<String>,
    /// Unblended cost.
    pub unblended: Decimal,
    /// Net unblended cost, where written.
    pub net: Option<Decimal>,
    /// Usage start, Unix ms.
    pub start_ms: i64,
    /// `resource_tags` as pairs.
    pub tags: Vec<(String, String)>,
    /// `product` as pairs.
    pub product: Vec<(String, String)>,
}

fn civil_ms(year: i32, month: u32, day: u32, hour: u32) -> i64 {
    let y = i64::from(if month <= 2 { year - 1 } else { year });
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    (days * 24 + i64::from(hour)) * 3_600_000
}

/// Generates the rows of `spec` in order, handing each to `sink`; returns the sums.
pub fn rows<F: FnMut(&GenRow) -> io::Result<()>>(
    spec: &GenSpec,
    mut sink: F,
) -> io::Result<Expected> {
    let mut rng = Rng(spec.seed);
    let mut e = Expected::default();
    let (year, month) = spec.period;
    let days = days_in(year, month);
    let hours = days * 24;
    let period_start = format!("{year:04}-{month:02}-01T00:00:00Z");
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    let period_end = format!("{ny:04}-{nm:02}-01T00:00:00Z");
    let workload_tags = format!("{{\"{}\":\"{}\"}}", spec.tag_key, spec.workload);
    let workload_tags_team = format!(
        "{{\"user_team\":\"payments\",\"{}\":\"{}\"}}",
        spec.tag_key, spec.workload
    );
    let other_tags = format!("{{\"{}\":\"search\"}}", spec.tag_key);
    let mut row: Vec<String> = vec![String::new(); HEADER.len()];
    let col = |name: &str| HEADER.iter().position(|h| *h == name).unwrap_or(0);
    let c_type = col("line_item_line_item_type");
    let c_net = col("line_item_net_unblended_cost");
    let c_product = col("line_item_product_code");
    let c_resource = col("line_item_resource_id");
    let c_unblended = col("line_item_unblended_cost");
    let c_blended = col("line_item_blended_cost");
    let c_end = col("line_item_usage_end_date");
    let c_start = col("line_item_usage_start_date");
    let c_usage = col("line_item_usage_type");
    let c_from = col("product_from_region_code");
    let c_region = col("product_region_code");
    let c_to = col("product_to_region_code");
    let c_tags = col("resource_tags");
    for i in 0..spec.rows {
        let it = rng.pick(CATALOG);
        // 70 % the workload (tagged or named in the spec), 30 % someone else.
        let ours = rng.below(10) < 7;
        let region: &str = if it.global {
            ""
        } else if ours {
            rng.pick(&spec.regions).as_str()
        } else {
            let other: &&str = rng.pick(OTHER_REGIONS);
            other
        };
        let hour = u32::try_from(rng.below(u64::from(hours))).unwrap_or(0);
        let (day, h) = (hour / 24 + 1, hour % 24);
        // Up to 200.0000000000, ten decimals; a credit now and then.
        let mut unblended =
            Decimal::new(i64::try_from(rng.below(2_000_000_000_000)).unwrap_or(0), 10);
        let credit = rng.below(50) == 0;
        if credit {
            unblended = -unblended;
        }
        let scientific = spec.scientific && rng.below(40) == 0;
        if scientific {
            // A tiny cost, written as `<mantissa>E-<k>`.
            let mantissa = i64::try_from(rng.below(99)).unwrap_or(0) + 1;
            unblended = Decimal::new(mantissa, 8);
        }
        let net = (spec.net_costs && rng.below(3) == 0)
            .then(|| (unblended * Decimal::new(9, 1)).normalize());
        let cost = net.unwrap_or(unblended);

        let (resource, resource_name, tags, in_scope) = if it.spec_db && ours {
            let (db_region, db) = spec
                .spec_databases
                .iter()
                .find(|(r, _)| r == region)
                .map(|(r, d)| (r.as_str(), d.as_str()))
                .unwrap_or((region, "unnamed-db"));
            let named = db != "unnamed-db";
            (
                format!("arn:aws:rds:{db_region}:123456789012:db:{db}"),
                db.to_owned(),
                String::new(),
                named,
            )
        } else {
            let name = format!("{}-{}", it.product.to_lowercase(), rng.below(40));
            let tags = if ours {
                if rng.below(2) == 0 {
                    workload_tags.clone()
                } else {
                    workload_tags_team.clone()
                }
            } else if rng.below(2) == 0 {
                other_tags.clone()
            } else {
                String::new()
            };
            (name.clone(), name, tags, ours)
        };

        let mut to_region = "";
        let mut from_region = "";
        let usage = if it.transfer {
            let candidates: Vec<&String> = spec.regions.iter().filter(|r| *r != region).collect();
            let to = if candidates.is_empty() {
                "eu-west-1"
            } else {
                rng.pick(&candidates).as_str()
            };
            to_region = to;
            from_region = region;
            format!("{}-{}-{}", prefix(region), prefix(to), it.usage)
        } else if it.global {
            it.usage.to_owned()
        } else {
            format!("{}-{}", prefix(region), it.usage)
        };
        // Half the transfer rows leave the from/to columns empty: the usage type says it.
        let write_codes = it.transfer && rng.below(2) == 0;

        // Expected sums.
        e.rows += 1;
        e.bill_total += cost;
        let region_key = if it.global { "global" } else { region };
        add(&mut e.bill_by_region, region_key, cost);
        if in_scope {
            e.matched_rows += 1;
            e.total += cost;
            e.total_unblended += unblended;
            add(&mut e.by_region, region_key, cost);
            *e.by_region_category
                .entry((region_key.to_owned(), it.category.to_owned()))
                .or_default() += cost;
            if it.transfer {
                *e.transfers
                    .entry((from_region.to_owned(), to_region.to_owned()))
                    .or_default() += cost;
            }
            if it.global {
                add(&mut e.global_services, it.product, cost);
            }
            for d in &spec.drills {
                let named = d.resources.is_empty() || d.resources.contains(&resource_name);
                if hour >= d.first_hour && hour < d.end_hour && named {
                    add(&mut e.drills, &d.id, cost);
                }
            }
        } else {
            e.out_of_scope += cost;
        }

        // The row.
        for f in row.iter_mut() {
            f.clear();
        }
        let fmt_cost = |d: Decimal| -> String {
            if scientific {
                format!("{}E-8", d.mantissa())
            } else {
                d.to_string()
            }
        };
        row[0] = "Anniversary".into();
        row[1] = "AWS".into();
        row[2] = period_end.clone();
        row[3] = period_start.clone();
        row[4] = "EUINIE26-123456".into();
        row[5] = "Amazon Web Services EMEA SARL".into();
        row[6] = "123456789012".into();
        row[7] = "acme-payer".into();
        row[8] = "{}".into();
        row[9] = "{}".into();
        row[10] = format!("{:016x}", rng.next());
        row[11] = format!(
            "{year:04}-{month:02}-{day:02}T{h:02}:00:00Z/{year:04}-{month:02}-{day:02}T{h:02}:59:59Z"
        );
        row[12] = if region.is_empty() {
            String::new()
        } else {
            format!("{region}a")
        };
        row[c_blended] = fmt_cost(unblended);
        row[14] = "0.0960000000".into();
        row[15] = "USD".into();
        row[16] = "Amazon Web Services, Inc.".into();
        row[17] = format!("{} {} usage", it.product, it.usage);
        row[c_type] = if credit { "Credit" } else { "Usage" }.into();
        if let Some(n) = net {
            row[c_net] = n.to_string();
        }
        row[20] = "4".into();
        row[21] = "1.0000000000".into();
        row[22] = "RunInstances".into();
        row[c_product] = it.product.into();
        row[c_resource] = resource;
        row[c_unblended] = fmt_cost(unblended);
        row[27] = "0.0960000000".into();
        row[28] = "210987654321".into();
        row[29] = "acme-prod".into();
        row[30] = "1.0000000000".into();
        row[c_end] = format!("{year:04}-{month:02}-{day:02}T{:02}:00:00Z", h + 1);
        row[c_start] = format!("{year:04}-{month:02}-{day:02}T{h:02}:00:00Z");
        row[c_usage] = usage.clone();
        row[34] = "USD".into();
        row[35] = row[c_unblended].clone();
        row[36] = "0.0960000000".into();
        row[37] = "On Demand".into();
        row[38] = "OnDemand".into();
        row[39] = "Hrs".into();
        row[40] = format!(
            "{{\"product_name\":\"{}\",\"family\":\"{}\"}}",
            it.product, it.family
        );
        if write_codes {
            row[c_from] = from_region.to_owned();
            row[c_to] = to_region.to_owned();
        }
        row[45] = "m6g.large".into();
        row[46] = region.to_owned();
        row[47] = "AWS Region".into();
        row[48] = it.family.into();
        row[c_region] = region.to_owned();
        row[50] = it.product.into();
        row[51] = format!("SKU{:08}", i % 997);
        row[54] = usage;
        let tag_pairs: Vec<(String, String)> = if tags.is_empty() {
            Vec::new()
        } else {
            serde_json::from_str::<BTreeMap<String, String>>(&tags)
                .map(|m| m.into_iter().collect())
                .unwrap_or_default()
        };
        row[c_tags] = tags;
        sink(&GenRow {
            cur: row.clone(),
            unblended,
            net,
            start_ms: civil_ms(year, month, day, h),
            tags: tag_pairs,
            product: vec![
                ("product_name".into(), it.product.into()),
                ("family".into(), it.family.into()),
            ],
        })?;
    }
    Ok(e)
}

/// [`generate`] through a gzip encoder.
pub fn generate_gz<W: Write>(spec: &GenSpec, out: W) -> io::Result<Expected> {
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::new(6));
    let expected = generate(spec, &mut gz)?;
    gz.finish()?;
    Ok(expected)
}

/// The four shapes of a Data Exports month: CUR 2.0 or FOCUS 1.2 (with AWS columns), each
/// as gzip CSV or Parquet (`S3OutputConfigurations`: `GZIP`+`TEXT_OR_CSV` or
/// `PARQUET`+`PARQUET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// CUR 2.0, gzip CSV.
    Cur2Csv,
    /// CUR 2.0, Parquet.
    Cur2Parquet,
    /// FOCUS 1.2, gzip CSV.
    FocusCsv,
    /// FOCUS 1.2, Parquet.
    FocusParquet,
}

impl Shape {
    /// All four.
    pub const ALL: [Shape; 4] = [
        Shape::Cur2Csv,
        Shape::Cur2Parquet,
        Shape::FocusCsv,
        Shape::FocusParquet,
    ];
    /// FOCUS rather than CUR 2.0.
    pub fn focus(self) -> bool {
        matches!(self, Shape::FocusCsv | Shape::FocusParquet)
    }
    /// Parquet rather than gzip CSV.
    pub fn parquet(self) -> bool {
        matches!(self, Shape::Cur2Parquet | Shape::FocusParquet)
    }
    /// The data files' extension (as Data Exports names them; nobody reads it).
    pub fn ext(self) -> &'static str {
        if self.parquet() {
            "snappy.parquet"
        } else {
            "csv.gz"
        }
    }
    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Cur2Csv => "cur2-csv",
            Shape::Cur2Parquet => "cur2-parquet",
            Shape::FocusCsv => "focus-csv",
            Shape::FocusParquet => "focus-parquet",
        }
    }
}

/// FOCUS 1.2 with AWS columns written (a realistic subset).
pub const FOCUS_HEADER: &[&str] = &[
    "AvailabilityZone",
    "BilledCost",
    "BillingAccountId",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeDescription",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "EffectiveCost",
    "ListCost",
    "RegionId",
    "ResourceId",
    "ServiceName",
    "SubAccountId",
    "Tags",
    "x_CostCategories",
    "x_Discounts",
    "x_Operation",
    "x_ServiceCode",
    "x_UsageType",
];

fn cur_col(name: &str) -> usize {
    HEADER.iter().position(|h| *h == name).unwrap_or(0)
}

fn focus_record(r: &GenRow) -> Vec<String> {
    let c = |n: &str| r.cur[cur_col(n)].clone();
    let cost = r.net.unwrap_or(r.unblended).to_string();
    vec![
        c("line_item_availability_zone"),
        cost.clone(),
        c("bill_payer_account_id"),
        "USD".into(),
        c("bill_billing_period_end_date"),
        c("bill_billing_period_start_date"),
        c("line_item_line_item_type"),
        c("line_item_line_item_description"),
        c("line_item_usage_end_date"),
        c("line_item_usage_start_date"),
        cost,
        c("pricing_public_on_demand_cost"),
        c("product_region_code"),
        c("line_item_resource_id"),
        c("line_item_product_code"),
        c("line_item_usage_account_id"),
        c("resource_tags"),
        "{}".into(),
        "{}".into(),
        c("line_item_operation"),
        c("line_item_product_code"),
        c("line_item_usage_type"),
    ]
}

/// A column buffered for one row group.
enum ColBuf {
    Str(&'static str, Vec<Option<String>>),
    F64(&'static str, Vec<Option<f64>>),
    Ts(&'static str, Vec<i64>),
    Map(&'static str, Vec<Vec<(String, String)>>),
}

impl ColBuf {
    fn schema(&self) -> String {
        match self {
            ColBuf::Str(n, _) => format!("optional binary {n} (STRING);"),
            ColBuf::F64(n, _) => format!("optional double {n};"),
            ColBuf::Ts(n, _) => format!("required int64 {n} (TIMESTAMP(MILLIS,true));"),
            ColBuf::Map(n, _) => format!(
                "optional group {n} (MAP) {{ repeated group key_value {{ required binary key (STRING); optional binary value (STRING); }} }}"
            ),
        }
    }
    fn clear(&mut self) {
        match self {
            ColBuf::Str(_, v) => v.clear(),
            ColBuf::F64(_, v) => v.clear(),
            ColBuf::Ts(_, v) => v.clear(),
            ColBuf::Map(_, v) => v.clear(),
        }
    }
}

fn nonempty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// The shortest double of a decimal: what an exporter writing doubles writes.
fn f64_of(d: Decimal) -> f64 {
    d.to_string().parse().unwrap_or(0.0)
}

fn parquet_columns(focus: bool) -> Vec<ColBuf> {
    use ColBuf::*;
    if focus {
        vec![
            F64("BilledCost", vec![]),
            Str("BillingAccountId", vec![]),
            Str("ChargeCategory", vec![]),
            Ts("ChargePeriodStart", vec![]),
            F64("EffectiveCost", vec![]),
            F64("ListCost", vec![]),
            Str("RegionId", vec![]),
            Str("ResourceId", vec![]),
            Str("ServiceName", vec![]),
            Map("Tags", vec![]),
            Str("x_Operation", vec![]),
            Str("x_ServiceCode", vec![]),
            Str("x_UsageType", vec![]),
        ]
    } else {
        vec![
            Str("bill_payer_account_id", vec![]),
            Str("identity_line_item_id", vec![]),
            F64("line_item_blended_cost", vec![]),
            Str("line_item_line_item_type", vec![]),
            F64("line_item_net_unblended_cost", vec![]),
            Str("line_item_product_code", vec![]),
            Str("line_item_resource_id", vec![]),
            F64("line_item_unblended_cost", vec![]),
            Ts("line_item_usage_start_date", vec![]),
            Str("line_item_usage_type", vec![]),
            Map("product", vec![]),
            Str("product_from_region_code", vec![]),
            Str("product_region_code", vec![]),
            Str("product_to_region_code", vec![]),
            Map("resource_tags", vec![]),
        ]
    }
}

fn push_parquet(cols: &mut [ColBuf], r: &GenRow, focus: bool) {
    let cost = r.net.unwrap_or(r.unblended);
    for col in cols.iter_mut() {
        match col {
            ColBuf::Str(n, v) => {
                let src = match (*n, focus) {
                    ("BillingAccountId", _) => "bill_payer_account_id",
                    ("ChargeCategory", _) => "line_item_line_item_type",
                    ("RegionId", _) => "product_region_code",
                    ("ResourceId", _) => "line_item_resource_id",
                    ("ServiceName" | "x_ServiceCode", _) => "line_item_product_code",
                    ("x_Operation", _) => "line_item_operation",
                    ("x_UsageType", _) => "line_item_usage_type",
                    (other, _) => other,
                };
                v.push(nonempty(r.cur[cur_col(src)].clone()));
            }
            ColBuf::F64(n, v) => v.push(match *n {
                "BilledCost" | "EffectiveCost" => Some(f64_of(cost)),
                "line_item_unblended_cost" | "line_item_blended_cost" => Some(f64_of(r.unblended)),
                "line_item_net_unblended_cost" => r.net.map(f64_of),
                _ => Some(f64_of(r.unblended)),
            }),
            ColBuf::Ts(_, v) => v.push(r.start_ms),
            ColBuf::Map(n, v) => v.push(if *n == "product" {
                r.product.clone()
            } else {
                r.tags.clone()
            }),
        }
    }
}

fn parquet_err(e: parquet::errors::ParquetError) -> io::Error {
    io::Error::other(e)
}

/// A Parquet part being written: rows buffered per row group, written column by column.
struct ParquetPart<W: Write + Send> {
    writer: parquet::file::writer::SerializedFileWriter<W>,
    cols: Vec<ColBuf>,
    focus: bool,
    rows: usize,
    group_rows: usize,
}

impl<W: Write + Send> ParquetPart<W> {
    fn new(out: W, focus: bool, group_rows: usize) -> io::Result<Self> {
        use parquet::basic::Compression;
        use parquet::file::properties::WriterProperties;
        let cols = parquet_columns(focus);
        let text = format!(
            "message {} {{ {} }}",
            if focus { "focus" } else { "cur2" },
            cols.iter()
                .map(ColBuf::schema)
                .collect::<Vec<_>>()
                .join(" ")
        );
        let schema = std::sync::Arc::new(
            parquet::schema::parser::parse_message_type(&text).map_err(parquet_err)?,
        );
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let writer = parquet::file::writer::SerializedFileWriter::new(
            out,
            schema,
            std::sync::Arc::new(props),
        )
        .map_err(parquet_err)?;
        Ok(ParquetPart {
            writer,
            cols,
            focus,
            rows: 0,
            group_rows,
        })
    }

    fn push(&mut self, r: &GenRow) -> io::Result<()> {
        push_parquet(&mut self.cols, r, self.focus);
        self.rows += 1;
        if self.rows >= self.group_rows {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        use parquet::column::writer::ColumnWriter;
        use parquet::data_type::ByteArray;
        if self.rows == 0 {
            return Ok(());
        }
        let mut rg = self.writer.next_row_group().map_err(parquet_err)?;
        for col in &self.cols {
            // A map is two leaves: keys, then values.
            let leaves = if matches!(col, ColBuf::Map(..)) { 2 } else { 1 };
            for leaf in 0..leaves {
                let Some(mut w) = rg.next_column().map_err(parquet_err)? else {
                    return Err(io::Error::other("schema has fewer columns"));
                };
                match (col, w.untyped()) {
                    (ColBuf::Str(_, v), ColumnWriter::ByteArrayColumnWriter(t)) => {
                        let def: Vec<i16> = v.iter().map(|x| i16::from(x.is_some())).collect();
                        let vals: Vec<ByteArray> = v
                            .iter()
                            .flatten()
                            .map(|s| ByteArray::from(s.as_str()))
                            .collect();
                        t.write_batch(&vals, Some(&def), None)
                            .map_err(parquet_err)?;
                    }
                    (ColBuf::F64(_, v), ColumnWriter::DoubleColumnWriter(t)) => {
                        let def: Vec<i16> = v.iter().map(|x| i16::from(x.is_some())).collect();
                        let vals: Vec<f64> = v.iter().flatten().copied().collect();
                        t.write_batch(&vals, Some(&def), None)
                            .map_err(parquet_err)?;
                    }
                    (ColBuf::Ts(_, v), ColumnWriter::Int64ColumnWriter(t)) => {
                        t.write_batch(v, None, None).map_err(parquet_err)?;
                    }
                    (ColBuf::Map(_, v), ColumnWriter::ByteArrayColumnWriter(t)) => {
                        let (mut def, mut rep, mut vals) = (vec![], vec![], vec![]);
                        for pairs in v {
                            if pairs.is_empty() {
                                def.push(1);
                                rep.push(0);
                            }
                            for (i, (k, val)) in pairs.iter().enumerate() {
                                rep.push(i16::from(i > 0));
                                def.push(if leaf == 0 { 2 } else { 3 });
                                vals.push(ByteArray::from(if leaf == 0 {
                                    k.as_str()
                                } else {
                                    val.as_str()
                                }));
                            }
                        }
                        t.write_batch(&vals, Some(&def), Some(&rep))
                            .map_err(parquet_err)?;
                    }
                    _ => return Err(io::Error::other("column type mismatch")),
                }
                w.close().map_err(parquet_err)?;
            }
        }
        rg.close().map_err(parquet_err)?;
        for c in &mut self.cols {
            c.clear();
        }
        self.rows = 0;
        Ok(())
    }

    fn finish(mut self) -> io::Result<()> {
        self.flush()?;
        self.writer.close().map_err(parquet_err)?;
        Ok(())
    }
}

enum PartWriter<W: Write + Send> {
    Csv(Box<csv::Writer<flate2::write::GzEncoder<W>>>),
    Parquet(Box<ParquetPart<W>>),
}

impl<W: Write + Send> PartWriter<W> {
    fn new(out: W, shape: Shape, group_rows: usize) -> io::Result<Self> {
        if shape.parquet() {
            return Ok(PartWriter::Parquet(Box::new(ParquetPart::new(
                out,
                shape.focus(),
                group_rows,
            )?)));
        }
        let gz = flate2::write::GzEncoder::new(out, flate2::Compression::new(6));
        let mut w = csv::WriterBuilder::new().from_writer(gz);
        w.write_record(if shape.focus() { FOCUS_HEADER } else { HEADER })?;
        Ok(PartWriter::Csv(Box::new(w)))
    }

    fn push(&mut self, r: &GenRow, focus: bool) -> io::Result<()> {
        match self {
            PartWriter::Csv(w) if focus => w.write_record(focus_record(r)).map_err(io::Error::from),
            PartWriter::Csv(w) => w.write_record(&r.cur).map_err(io::Error::from),
            PartWriter::Parquet(p) => p.push(r),
        }
    }

    fn finish(self) -> io::Result<()> {
        match self {
            PartWriter::Csv(w) => {
                let gz = w
                    .into_inner()
                    .map_err(|e| io::Error::other(e.to_string()))?;
                gz.finish()?;
                Ok(())
            }
            PartWriter::Parquet(p) => p.finish(),
        }
    }
}

/// Writes the month of `spec` in `shape` as `parts` data files (`open(i)` gives part
/// `i`'s sink), row groups of `group_rows` rows for Parquet; returns the sums the report
/// of that shape must show (FOCUS has one cost, `BilledCost`, so its unblended total is
/// its total).
pub fn write_parts<W: Write + Send, F: FnMut(usize) -> io::Result<W>>(
    spec: &GenSpec,
    shape: Shape,
    parts: usize,
    group_rows: usize,
    mut open: F,
) -> io::Result<Expected> {
    let parts = parts.max(1) as u64;
    let mut current: Option<(u64, PartWriter<W>)> = None;
    let mut index = 0u64;
    let mut e = rows(spec, |r| {
        let part = index * parts / spec.rows.max(1);
        index += 1;
        if current.as_ref().map(|c| c.0) != Some(part) {
            if let Some((_, w)) = current.take() {
                w.finish()?;
            }
            let i = usize::try_from(part).unwrap_or(0);
            current = Some((part, PartWriter::new(open(i)?, shape, group_rows)?));
        }
        match current.as_mut() {
            Some((_, w)) => w.push(r, shape.focus()),
            None => Ok(()),
        }
    })?;
    if let Some((_, w)) = current.take() {
        w.finish()?;
    }
    if shape.focus() {
        e.total_unblended = e.total;
    }
    Ok(e)
}

/// The Data Exports manifest of a month (the documented fields: `executionId`,
/// `exportArn`, `columns`, `dataFiles`).
pub fn manifest_json(
    shape: Shape,
    execution_id: &str,
    export: &str,
    data_files: &[String],
) -> String {
    let columns: Vec<serde_json::Value> = if shape.focus() {
        FOCUS_HEADER
            .iter()
            .map(|n| serde_json::json!({"name": n, "type": "string"}))
            .collect()
    } else {
        HEADER
            .iter()
            .map(|n| serde_json::json!({"name": n, "type": "string"}))
            .collect()
    };
    serde_json::json!({
        "executionId": execution_id,
        "exportArn": format!("arn:aws:bcm-data-exports:us-east-1:123456789012:export/{export}-{execution_id}"),
        "columns": columns,
        "dataFiles": data_files,
        "additionalOutputFiles": [],
    })
    .to_string()
}
