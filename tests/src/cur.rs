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
    let mut rng = Rng(spec.seed);
    let mut w = csv::WriterBuilder::new().from_writer(out);
    w.write_record(HEADER)?;
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
        row[c_tags] = tags;
        w.write_record(&row)?;
    }
    w.flush()?;
    Ok(e)
}

/// [`generate`] through a gzip encoder.
pub fn generate_gz<W: Write>(spec: &GenSpec, out: W) -> io::Result<Expected> {
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::new(6));
    let expected = generate(spec, &mut gz)?;
    gz.finish()?;
    Ok(expected)
}
