//! Parquet parts: the same aggregation as the CSV path, read with the parquet crate's own
//! column readers. Only the columns the report needs are read (projection: the tags only
//! with a workload scope, the start only when drills are costed, the resource id only
//! with either), row group by row group, in batches of [`BATCH`] rows, so memory is a
//! few pages per column whatever the file size. Works over any [`ChunkReader`]: a local
//! file in tests and benchmarks, ranged S3 GETs in the Lambda ([`crate::s3io`]).
//!
//! Types as Data Exports writes them (table dictionaries): costs `double` (strings are
//! accepted too), converted to the exact decimal they print as; timestamps `INT64`
//! timestamps (or strings); tags `map<string,string>` (or a JSON string, as in CSV).

use parquet::basic::{LogicalType, TimeUnit, Type as Physical};
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, FloatType, Int64Type};
use parquet::file::reader::{ChunkReader, FileReader, RowGroupReader};
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::schema::types::ColumnDescriptor;
use rust_decimal::Decimal;

use crate::cur::{
    Aggregator, Amount, Defect, Fields, FileStats, Key, NO_REGION, ParseError, RowAt, RowError,
    Start, Table, money,
};
use crate::pages::{Chunk, Cost, Costs, ELSEWHERE, NULL, Role, decimal_of_f64, supported};

/// Rows decoded at a time per column.
pub const BATCH: usize = 4096;

/// Where a role's values are, and how to read them.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Money,
    Time,
}

#[derive(Debug, Clone, Copy)]
struct Leaf {
    index: usize,
    name: &'static str,
    max_def: i16,
}

#[derive(Debug, Clone, Copy)]
enum TagsAt {
    /// `map<string,string>`: the key and value leaves.
    Map { key: Leaf, value: Leaf },
    /// A JSON object in a string column.
    Json(Leaf),
}

#[derive(Debug)]
struct Plan {
    table: Table,
    start: Option<Leaf>,
    product: Leaf,
    usage_type: Leaf,
    item_type: Leaf,
    unblended: Leaf,
    net: Option<Leaf>,
    region: Leaf,
    from_region: Option<Leaf>,
    to_region: Option<Leaf>,
    resource: Option<Leaf>,
    tags: Option<TagsAt>,
}

fn type_name(c: &ColumnDescriptor) -> String {
    match c.logical_type_ref() {
        Some(l) => format!("{} ({l:?})", c.physical_type()),
        None => c.physical_type().to_string(),
    }
}

fn plan(
    file: &str,
    columns: &[std::sync::Arc<ColumnDescriptor>],
    table: Option<Table>,
    agg: &Aggregator,
) -> Result<Plan, ParseError> {
    let top = |c: &ColumnDescriptor| c.path().parts().first().cloned().unwrap_or_default();
    let table = table.unwrap_or_else(|| {
        let names: Vec<String> = columns.iter().map(|c| top(c)).collect();
        Table::detect(names.iter().map(|n| n.as_bytes()))
    });
    let missing: Vec<&'static str> = table
        .required()
        .into_iter()
        .filter(|name| !columns.iter().any(|c| top(c) == *name))
        .collect();
    if !missing.is_empty() {
        return Err(ParseError::MissingColumns {
            file: file.to_owned(),
            missing,
        });
    }
    let flat = |name: &'static str, kind: Kind| -> Result<Option<Leaf>, ParseError> {
        let Some((index, c)) = columns
            .iter()
            .enumerate()
            .find(|(_, c)| c.path().parts().len() == 1 && top(c) == name)
        else {
            return Ok(None);
        };
        let ok = match kind {
            Kind::Text => c.physical_type() == Physical::BYTE_ARRAY,
            Kind::Money => matches!(
                c.physical_type(),
                Physical::DOUBLE | Physical::FLOAT | Physical::BYTE_ARRAY
            ),
            Kind::Time => {
                c.physical_type() == Physical::BYTE_ARRAY
                    || (c.physical_type() == Physical::INT64
                        && matches!(c.logical_type_ref(), Some(LogicalType::Timestamp { .. })))
            }
        };
        if !ok || c.max_rep_level() > 0 {
            return Err(ParseError::ColumnType {
                file: file.to_owned(),
                column: name,
                found: type_name(c),
                expected: match kind {
                    Kind::Text => "a string",
                    Kind::Money => "a double or a decimal string",
                    Kind::Time => "an INT64 timestamp or a string",
                },
            });
        }
        Ok(Some(Leaf {
            index,
            name,
            max_def: c.max_def_level(),
        }))
    };
    let need = |name: &'static str, kind: Kind| -> Result<Leaf, ParseError> {
        flat(name, kind)?.ok_or_else(|| ParseError::ColumnType {
            file: file.to_owned(),
            column: name,
            found: "a nested column".to_owned(),
            expected: "a flat column",
        })
    };
    let n = table.names();
    let tags = if agg.scope().is_some() {
        let leaves: Vec<(usize, &std::sync::Arc<ColumnDescriptor>)> = columns
            .iter()
            .enumerate()
            .filter(|(_, c)| top(c) == n.tags)
            .collect();
        let leaf_named = |last: &str| {
            leaves
                .iter()
                .find(|(_, c)| {
                    c.path().parts().len() == 3
                        && c.path().parts().last().map(String::as_str) == Some(last)
                        && c.physical_type() == Physical::BYTE_ARRAY
                })
                .map(|(i, c)| Leaf {
                    index: *i,
                    name: n.tags,
                    max_def: c.max_def_level(),
                })
        };
        match (leaf_named("key"), leaf_named("value")) {
            (Some(key), Some(value)) => Some(TagsAt::Map { key, value }),
            _ => Some(TagsAt::Json(need(n.tags, Kind::Text)?)),
        }
    } else {
        None
    };
    Ok(Plan {
        table,
        start: if agg.needs_start() {
            Some(need(n.start, Kind::Time)?)
        } else {
            None
        },
        product: need(n.product, Kind::Text)?,
        usage_type: need(n.usage_type, Kind::Text)?,
        item_type: need(n.item_type, Kind::Text)?,
        unblended: need(n.unblended, Kind::Money)?,
        net: match n.net {
            Some(name) => flat(name, Kind::Money)?,
            None => None,
        },
        region: need(n.region, Kind::Text)?,
        from_region: match n.from_region {
            Some(name) => Some(need(name, Kind::Text)?),
            None => None,
        },
        to_region: match n.to_region {
            Some(name) => Some(need(name, Kind::Text)?),
            None => None,
        },
        resource: if agg.needs_resource() {
            Some(need(n.resource, Kind::Text)?)
        } else {
            None
        },
        tags,
    })
}

/// One column's reader and its current batch.
enum Values {
    Bytes(ColumnReaderImpl<ByteArrayType>, Vec<ByteArray>),
    Double(ColumnReaderImpl<DoubleType>, Vec<f64>),
    Float(ColumnReaderImpl<FloatType>, Vec<f32>),
    Int64(ColumnReaderImpl<Int64Type>, Vec<i64>, i64),
}

struct Batch {
    leaf: Leaf,
    values: Values,
    def: Vec<i16>,
    rep: Vec<i16>,
    /// Rows in the batch.
    records: usize,
    /// Levels in the batch (more than rows for a map).
    levels: usize,
    /// Index of each row's value in `values`, or `usize::MAX` for a null (flat columns).
    at: Vec<usize>,
}

impl Batch {
    fn open(
        rg: &dyn RowGroupReader,
        leaf: Leaf,
        file: &str,
        group: usize,
    ) -> Result<Batch, ParseError> {
        let err = |source| ParseError::Parquet {
            file: file.to_owned(),
            row_group: Some(group),
            column: Some(leaf.name.to_owned()),
            source,
        };
        let millis_per = match rg
            .metadata()
            .column(leaf.index)
            .column_descr()
            .logical_type_ref()
        {
            Some(LogicalType::Timestamp { unit, .. }) => match unit {
                TimeUnit::MILLIS => 1,
                TimeUnit::MICROS => 1_000,
                TimeUnit::NANOS => 1_000_000,
            },
            _ => 1,
        };
        let values = match rg.get_column_reader(leaf.index).map_err(err)? {
            ColumnReader::ByteArrayColumnReader(r) => Values::Bytes(r, Vec::with_capacity(BATCH)),
            ColumnReader::DoubleColumnReader(r) => Values::Double(r, Vec::with_capacity(BATCH)),
            ColumnReader::FloatColumnReader(r) => Values::Float(r, Vec::with_capacity(BATCH)),
            ColumnReader::Int64ColumnReader(r) => {
                Values::Int64(r, Vec::with_capacity(BATCH), millis_per)
            }
            _ => {
                return Err(ParseError::ColumnType {
                    file: file.to_owned(),
                    column: leaf.name,
                    found: "another physical type".to_owned(),
                    expected: "a string, double or INT64",
                });
            }
        };
        Ok(Batch {
            leaf,
            values,
            def: Vec::with_capacity(BATCH),
            rep: Vec::with_capacity(BATCH),
            records: 0,
            levels: 0,
            at: Vec::with_capacity(BATCH),
        })
    }

    /// Reads the next batch of up to `n` rows.
    fn next(&mut self, n: usize, nested: bool) -> parquet::errors::Result<usize> {
        self.def.clear();
        self.rep.clear();
        let rep = nested.then_some(&mut self.rep);
        let (records, _, levels) = match &mut self.values {
            Values::Bytes(r, v) => {
                v.clear();
                r.read_records(n, Some(&mut self.def), rep, v)?
            }
            Values::Double(r, v) => {
                v.clear();
                r.read_records(n, Some(&mut self.def), rep, v)?
            }
            Values::Float(r, v) => {
                v.clear();
                r.read_records(n, Some(&mut self.def), rep, v)?
            }
            Values::Int64(r, v, _) => {
                v.clear();
                r.read_records(n, Some(&mut self.def), rep, v)?
            }
        };
        self.records = records;
        self.levels = if self.leaf.max_def == 0 {
            records
        } else {
            levels
        };
        if !nested {
            self.at.clear();
            let mut next = 0usize;
            for i in 0..records {
                let present = self.leaf.max_def == 0 || self.def.get(i) == Some(&self.leaf.max_def);
                if present {
                    self.at.push(next);
                    next += 1;
                } else {
                    self.at.push(usize::MAX);
                }
            }
        }
        Ok(records)
    }

    fn bytes(&self, row: usize) -> &[u8] {
        match (&self.values, self.at.get(row)) {
            (Values::Bytes(_, v), Some(&i)) => v.get(i).map_or(&[][..], ByteArray::data),
            _ => &[],
        }
    }

    fn money(&self, row: usize) -> Result<Option<Decimal>, RowError> {
        let Some(&i) = self.at.get(row) else {
            return Ok(None);
        };
        if i == usize::MAX {
            return Ok(None);
        }
        let float = |v: f64| -> Result<Option<Decimal>, RowError> {
            decimal_of_f64(v).map(Some).ok_or_else(|| {
                RowError::Defect(Defect::NotANumber {
                    column: self.leaf.name,
                    value: v.to_string(),
                })
            })
        };
        match &self.values {
            Values::Double(_, v) => float(v.get(i).copied().unwrap_or_default()),
            Values::Float(_, v) => float(f64::from(v.get(i).copied().unwrap_or_default())),
            Values::Bytes(_, v) => {
                let b = v.get(i).map_or(&[][..], ByteArray::data);
                if b.is_empty() {
                    Ok(None)
                } else {
                    money(b, self.leaf.name).map(Some)
                }
            }
            Values::Int64(..) => Ok(None),
        }
    }

    fn start(&self, row: usize) -> Start<'_> {
        let Some(&i) = self.at.get(row) else {
            return Start::Null;
        };
        match &self.values {
            Values::Int64(_, v, per) => v
                .get(i)
                .map_or(Start::Null, |t| Start::Millis(t.div_euclid(*per))),
            Values::Bytes(_, v) => v.get(i).map_or(Start::Null, |b| Start::Text(b.data())),
            _ => Start::Null,
        }
    }
}

/// Reads one Parquet file into `agg`, holding `table` when given (from the manifest).
///
/// Row groups whose needed columns are all PLAIN or dictionary encoded are read page by
/// page ([`crate::pages`]), unless drills are costed; the others row by row over the
/// crate's column readers. Both give the same sums.
pub fn read<'a, R: ChunkReader + 'static>(
    agg: &'a mut Aggregator,
    file: &str,
    source: R,
    table: Option<Table>,
) -> Result<&'a FileStats, ParseError> {
    let reader = SerializedFileReader::new(source).map_err(|source| ParseError::Parquet {
        file: file.to_owned(),
        row_group: None,
        column: None,
        source,
    })?;
    let meta = reader.metadata();
    let columns = meta.file_metadata().schema_descr().columns().to_vec();
    let plan = plan(file, &columns, table, agg)?;
    let mut rows = 0u64;
    let mut last = RowAt::Row {
        row_group: 0,
        row: 0,
    };
    for group in 0..meta.num_row_groups() {
        let rg = reader
            .get_row_group(group)
            .map_err(|source| ParseError::Parquet {
                file: file.to_owned(),
                row_group: Some(group),
                column: None,
                source,
            })?;
        let group_rows = u64::try_from(rg.metadata().num_rows()).unwrap_or(0);
        if fast(&plan, agg, rg.as_ref()) {
            read_group_pages(agg, &plan, rg.as_ref(), file, group)?;
        } else {
            read_group_rows(agg, &plan, rg.as_ref(), file, group)?;
        }
        rows += group_rows;
        last = RowAt::Row {
            row_group: group,
            row: group_rows.saturating_sub(1),
        };
    }
    agg.file_done(file, rows, plan.net.is_some(), plan.table, "Parquet", last)
}

/// The flat leaves a row group is aggregated from.
fn flat_leaves(plan: &Plan) -> impl Iterator<Item = Leaf> + '_ {
    [
        plan.product,
        plan.usage_type,
        plan.item_type,
        plan.unblended,
        plan.region,
    ]
    .into_iter()
    .chain(plan.net)
    .chain(plan.from_region)
    .chain(plan.to_region)
    .chain(plan.resource)
}

/// Whether a row group can be read page by page: no drills to cost (their windows need
/// each row's start and resource), and every flat column in a supported encoding.
fn fast(plan: &Plan, agg: &Aggregator, rg: &dyn RowGroupReader) -> bool {
    plan.start.is_none()
        && !agg.needs_start()
        && flat_leaves(plan).all(|leaf| supported(rg.metadata().column(leaf.index)))
}

/// One row group read page by page: each column decoded a batch at a time into ids (its
/// dictionary entries mapped once) or costs, then the batch's rows added by key.
fn read_group_pages(
    agg: &mut Aggregator,
    plan: &Plan,
    rg: &dyn RowGroupReader,
    file: &str,
    group: usize,
) -> Result<(), ParseError> {
    let fail = |column: &str, source| ParseError::Parquet {
        file: file.to_owned(),
        row_group: Some(group),
        column: Some(column.to_owned()),
        source,
    };
    let chunk = |leaf: Leaf, role: Role| -> Result<Chunk, ParseError> {
        let pages = rg
            .get_column_page_reader(leaf.index)
            .map_err(|e| fail(leaf.name, e))?;
        let physical = rg.metadata().column(leaf.index).column_type();
        Ok(Chunk::new(pages, leaf.name, physical, role, leaf.max_def))
    };
    let opt = |leaf: Option<Leaf>, role| leaf.map(|l| chunk(l, role)).transpose();
    let mut region = chunk(plan.region, Role::Text)?;
    let mut product = chunk(plan.product, Role::Text)?;
    let mut usage = chunk(plan.usage_type, Role::Text)?;
    let mut item = chunk(plan.item_type, Role::Text)?;
    let mut unblended = chunk(plan.unblended, Role::Money)?;
    let mut net = opt(plan.net, Role::Money)?;
    let mut from = opt(plan.from_region, Role::Text)?;
    let mut to = opt(plan.to_region, Role::Text)?;
    let mut resource = opt(plan.resource, Role::Text)?;
    let mut tags = open_tags(plan, rg, file, group)?;
    let group_rows = usize::try_from(rg.metadata().num_rows()).unwrap_or(0);
    let mut ids: [Vec<u32>; 7] = Default::default();
    let (mut unblended_costs, mut net_costs) = (Costs::default(), Costs::default());
    let mut done = 0usize;
    while done < group_rows {
        let want = BATCH.min(group_rows - done);
        for v in &mut ids {
            v.clear();
        }
        let [regions, products, usages, items, froms, tos, resources] = &mut ids;
        {
            let names = agg.names();
            let text = |c: &mut Chunk,
                        out: &mut Vec<u32>,
                        map: &mut dyn FnMut(&[u8]) -> u32|
             -> Result<(), ParseError> {
                c.ids(want, out, map).map_err(|e| fail(c.name(), e))
            };
            text(&mut region, regions, &mut |b| names.region(b))?;
            text(&mut product, products, &mut |b| names.service(b))?;
            text(&mut usage, usages, &mut |b| names.usage(b))?;
            text(&mut item, items, &mut |b| names.item(b))?;
            if let Some(c) = from.as_mut() {
                text(c, froms, &mut |b| names.end_region(b))?;
            }
            if let Some(c) = to.as_mut() {
                text(c, tos, &mut |b| names.end_region(b))?;
            }
        }
        if let (Some(c), Some(scope)) = (resource.as_mut(), agg.scope()) {
            c.ids(want, resources, &mut |b| {
                u32::from(scope.matches_resource(b))
            })
            .map_err(|e| fail(c.name(), e))?;
        }
        unblended_costs.clear();
        unblended
            .costs(want, &mut unblended_costs)
            .map_err(|e| fail(unblended.name(), e))?;
        net_costs.clear();
        if let Some(c) = net.as_mut() {
            c.costs(want, &mut net_costs)
                .map_err(|e| fail(c.name(), e))?;
        }
        read_tags(tags.as_mut(), want, file, group)?;
        let matches = tag_matches(agg, tags.as_ref(), want);
        let scoped = agg.scope().is_some();
        for row in 0..want {
            let at = || RowAt::Row {
                row_group: group,
                row: u64::try_from(done + row).unwrap_or(u64::MAX),
            };
            let bad = |column: &'static str, value: &String| {
                RowError::Defect(Defect::NotANumber {
                    column,
                    value: value.clone(),
                })
            };
            let result = (|| -> Result<(), RowError> {
                // Nearly every row: a fixed-point amount; the rest from `others`.
                let amount =
                    |costs: &Costs, column: &'static str| -> Result<Option<Amount>, RowError> {
                        match costs.rows.get(row).copied() {
                            None | Some(NULL) => Ok(None),
                            Some(ELSEWHERE) => match costs.other(row) {
                                Some(Cost::Value(a)) => Ok(Some(*a)),
                                Some(Cost::Bad(v)) => Err(bad(column, v)),
                                Some(Cost::Null) | None => Ok(None),
                            },
                            Some(n) => Ok(Some(Amount::Fixed(n))),
                        }
                    };
                let unblended =
                    amount(&unblended_costs, plan.unblended.name)?.unwrap_or(Amount::ZERO);
                let cost =
                    amount(&net_costs, plan.net.map_or("", |l| l.name))?.unwrap_or(unblended);
                let in_scope = !scoped
                    || resources.get(row) == Some(&1)
                    || matches.get(row).copied().unwrap_or(false);
                if !in_scope {
                    return agg.add_out_of_scope_amount(cost);
                }
                let id = |v: &Vec<u32>| v.get(row).copied().unwrap_or(NO_REGION);
                agg.add_keyed(
                    Key {
                        region: id(regions),
                        service: id(products),
                        usage: id(usages),
                        item: id(items),
                        from: id(froms),
                        to: id(tos),
                    },
                    cost,
                    unblended,
                )
            })();
            match result {
                Ok(()) => {}
                Err(RowError::Overflow) => {
                    return Err(ParseError::Overflow {
                        file: file.to_owned(),
                        at: at(),
                    });
                }
                Err(RowError::Defect(defect)) => agg.bad_row(file, at(), defect)?,
            }
        }
        done += want;
    }
    Ok(())
}

/// The tag columns' readers, when a scope needs them: the key and value leaves of a map,
/// or one JSON string column.
type Tags = (Batch, Option<Batch>);

fn open_tags(
    plan: &Plan,
    rg: &dyn RowGroupReader,
    file: &str,
    group: usize,
) -> Result<Option<Tags>, ParseError> {
    let open = |leaf: Leaf| Batch::open(rg, leaf, file, group);
    Ok(match plan.tags {
        Some(TagsAt::Map { key, value }) => Some((open(key)?, Some(open(value)?))),
        Some(TagsAt::Json(leaf)) => Some((open(leaf)?, None)),
        None => None,
    })
}

/// Reads the tags of the next `want` rows.
fn read_tags(
    tags: Option<&mut Tags>,
    want: usize,
    file: &str,
    group: usize,
) -> Result<(), ParseError> {
    let Some((k, v)) = tags else {
        return Ok(());
    };
    let fail = |leaf: Leaf, source| ParseError::Parquet {
        file: file.to_owned(),
        row_group: Some(group),
        column: Some(leaf.name.to_owned()),
        source,
    };
    let nested = v.is_some();
    let got = k.next(want, nested).map_err(|e| fail(k.leaf, e))?;
    if got != want {
        return Err(short(file, group, k.leaf, got, want));
    }
    if let Some(v) = v {
        let got = v.next(want, true).map_err(|e| fail(v.leaf, e))?;
        if got != want || v.levels != k.levels {
            return Err(short(file, group, v.leaf, got, want));
        }
    }
    Ok(())
}

/// One row group read row by row over the crate's column readers (drills costed, or an
/// encoding [`crate::pages`] does not decode).
fn read_group_rows(
    agg: &mut Aggregator,
    plan: &Plan,
    rg: &dyn RowGroupReader,
    file: &str,
    group: usize,
) -> Result<(), ParseError> {
    let open = |leaf: Leaf| Batch::open(rg, leaf, file, group);
    let opt = |leaf: Option<Leaf>| leaf.map(open).transpose();
    let mut flat: Vec<Batch> = vec![
        open(plan.product)?,
        open(plan.usage_type)?,
        open(plan.item_type)?,
        open(plan.unblended)?,
        open(plan.region)?,
    ];
    let mut optional: [Option<Batch>; 5] = [
        opt(plan.net)?,
        opt(plan.from_region)?,
        opt(plan.to_region)?,
        opt(plan.resource)?,
        opt(plan.start)?,
    ];
    let mut tags = open_tags(plan, rg, file, group)?;
    let group_rows = usize::try_from(rg.metadata().num_rows()).unwrap_or(0);
    let mut done = 0usize;
    while done < group_rows {
        let want = BATCH.min(group_rows - done);
        let fail = |leaf: Leaf, source| ParseError::Parquet {
            file: file.to_owned(),
            row_group: Some(group),
            column: Some(leaf.name.to_owned()),
            source,
        };
        for b in flat.iter_mut().chain(optional.iter_mut().flatten()) {
            let got = b.next(want, false).map_err(|e| fail(b.leaf, e))?;
            if got != want {
                return Err(short(file, group, b.leaf, got, want));
            }
        }
        read_tags(tags.as_mut(), want, file, group)?;
        let matches = tag_matches(agg, tags.as_ref(), want);
        let [net, from, to, resource, start] = &optional;
        let [product, usage, item, unblended, region] = flat.as_slice() else {
            return Ok(());
        };
        for row in 0..want {
            let at = RowAt::Row {
                row_group: group,
                row: u64::try_from(done + row).unwrap_or(u64::MAX),
            };
            let result = (|| -> Result<(), RowError> {
                let unblended = unblended.money(row)?.unwrap_or_default();
                let cost = match net {
                    Some(net) => net.money(row)?.unwrap_or(unblended),
                    None => unblended,
                };
                let resource = resource.as_ref().map_or(&[][..], |b| b.bytes(row));
                let in_scope = match agg.scope() {
                    None => true,
                    Some(scope) => {
                        scope.matches_resource(resource)
                            || matches.get(row).copied().unwrap_or(false)
                    }
                };
                agg.add(&Fields {
                    cost,
                    unblended,
                    in_scope,
                    start: start.as_ref().map_or(Start::Null, |b| b.start(row)),
                    region: region.bytes(row),
                    product: product.bytes(row),
                    usage_type: usage.bytes(row),
                    item_type: item.bytes(row),
                    from_region: from.as_ref().map_or(&[][..], |b| b.bytes(row)),
                    to_region: to.as_ref().map_or(&[][..], |b| b.bytes(row)),
                    resource,
                })
            })();
            match result {
                Ok(()) => {}
                Err(RowError::Overflow) => {
                    return Err(ParseError::Overflow {
                        file: file.to_owned(),
                        at,
                    });
                }
                Err(RowError::Defect(defect)) => agg.bad_row(file, at, defect)?,
            }
        }
        done += want;
    }
    Ok(())
}

fn short(file: &str, group: usize, leaf: Leaf, got: usize, want: usize) -> ParseError {
    ParseError::Parquet {
        file: file.to_owned(),
        row_group: Some(group),
        column: Some(leaf.name.to_owned()),
        source: parquet::errors::ParquetError::General(format!(
            "{got} rows where the row group has {want} more"
        )),
    }
}

/// For each row of the batch, whether its tags carry the workload's tag.
fn tag_matches(agg: &Aggregator, tags: Option<&Tags>, rows: usize) -> Vec<bool> {
    let (Some(scope), Some((keys, values))) = (agg.scope(), tags) else {
        return Vec::new();
    };
    let mut out = vec![false; rows];
    let Some(values) = values else {
        // A JSON string column.
        for (row, hit) in out.iter_mut().enumerate() {
            *hit = scope.matches_json_tags(keys.bytes(row));
        }
        return out;
    };
    let (Values::Bytes(_, kv), Values::Bytes(_, vv)) = (&keys.values, &values.values) else {
        return out;
    };
    let (mut row, mut ki, mut vi) = (0usize, 0usize, 0usize);
    for level in 0..keys.levels {
        if level > 0 && keys.rep.get(level) == Some(&0) {
            row += 1;
        }
        let key = (keys.def.get(level) == Some(&keys.leaf.max_def)).then(|| {
            ki += 1;
            kv.get(ki - 1).map_or(&[][..], ByteArray::data)
        });
        let value = (values.def.get(level) == Some(&values.leaf.max_def)).then(|| {
            vi += 1;
            vv.get(vi - 1).map_or(&[][..], ByteArray::data)
        });
        if let (Some(k), Some(v), Some(hit)) = (key, value, out.get_mut(row)) {
            *hit |= scope.matches_tag_pair(k, v);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use parquet::data_type::ByteArray;
    use parquet::file::writer::SerializedFileWriter;

    use super::*;

    const COLUMNS: [&str; 10] = [
        "line_item_usage_start_date",
        "product_from_region_code",
        "product_to_region_code",
        "line_item_resource_id",
        "resource_tags",
        "line_item_product_code",
        "line_item_usage_type",
        "line_item_line_item_type",
        "line_item_unblended_cost",
        "product_region_code",
    ];

    /// A CUR 2.0 Parquet file of string columns, one row group per entry of `groups`,
    /// each row group's rows costing the given texts.
    fn file(groups: &[&[&str]]) -> Bytes {
        let schema = format!(
            "message m {{ {} }}",
            COLUMNS
                .iter()
                .map(|c| format!("optional binary {c} (STRING);"))
                .collect::<String>()
        );
        let schema = Arc::new(parquet::schema::parser::parse_message_type(&schema).unwrap());
        let mut out = Vec::new();
        let mut w = SerializedFileWriter::new(&mut out, schema, Arc::default()).unwrap();
        for costs in groups {
            let mut rg = w.next_row_group().unwrap();
            for name in COLUMNS {
                let values: Vec<ByteArray> = costs
                    .iter()
                    .map(|c| match name {
                        "line_item_product_code" => "AmazonEC2",
                        "line_item_usage_type" => "USE1-BoxUsage",
                        "line_item_line_item_type" => "Usage",
                        "line_item_unblended_cost" => c,
                        "product_region_code" => "us-east-1",
                        "line_item_usage_start_date" => "2026-10-01T00:00:00Z",
                        "resource_tags" => "{}",
                        _ => "",
                    })
                    .map(ByteArray::from)
                    .collect();
                let mut col = rg.next_column().unwrap().unwrap();
                col.typed::<ByteArrayType>()
                    .write_batch(&values, Some(&vec![1; values.len()]), None)
                    .unwrap();
                col.close().unwrap();
            }
            rg.close().unwrap();
        }
        w.close().unwrap();
        Bytes::from(out)
    }

    #[test]
    fn a_bad_row_is_named_by_its_row_group_and_row() {
        let data = file(&[&["1", "2"], &["3", "abc", "4"]]);
        let mut agg = Aggregator::new(None, vec![], false);
        let err = read(&mut agg, "a.parquet", data.clone(), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a.parquet: row group 1, row 1: line_item_unblended_cost is not a number: `abc`"
        );
        let mut agg = Aggregator::new(None, vec![], true);
        read(&mut agg, "a.parquet", data, None).unwrap();
        let a = agg.finish();
        assert_eq!(a.bad_rows, 1);
        assert_eq!(a.total, Decimal::from(10));
        let sample = serde_json::to_value(&a.bad_row_samples[0]).unwrap();
        assert_eq!(sample["row_group"], 1);
        assert_eq!(sample["row"], 1);
        assert!(sample.get("line").is_none(), "{sample}");
    }

    /// Rows of a month in miniature: `(region, product, usage, item, unblended, net,
    /// from, to, resource, tags)`, with empty strings and absent nets, Regions that
    /// repeat (dictionary) and costs that mostly do not.
    fn month(n: usize) -> Vec<[String; 10]> {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            x >> 16
        };
        (0..n)
            .map(|i| {
                let pick = |v: &[&str], r: u64| v[(r % v.len() as u64) as usize].to_owned();
                let region = pick(&["us-east-1", "eu-west-1", "", "ap-southeast-1"], next());
                let product = pick(
                    &["AmazonEC2", "AmazonRDS", "AmazonS3", "AWSDataTransfer"],
                    next(),
                );
                let usage = pick(
                    &[
                        "USE1-BoxUsage:m6g.large",
                        "USE1-EUW1-AWS-Out-Bytes",
                        "EUW1-APS1-AWS-In-Bytes",
                        "TimedStorage-ByteHrs",
                    ],
                    next(),
                );
                let item = pick(&["Usage", "Tax", "Credit"], next());
                let places = (next() % 11) as u32;
                let cost = Decimal::new((next() % 50_000_000_000) as i64 - 1_000_000_000, places);
                let net = if i % 3 == 0 {
                    String::new()
                } else {
                    (cost * Decimal::new(9, 1)).normalize().to_string()
                };
                let (from, to) = match next() % 4 {
                    0 => ("us-east-1", "eu-west-1"),
                    1 => ("eu-west-1", "eu-west-1"),
                    _ => ("", ""),
                };
                let resource = pick(
                    &["i-1", "arn:aws:rds:eu-west-1:1:db:checkout-db", "", "b"],
                    next(),
                );
                let tags = pick(
                    &[r#"{"user_lifeboat_workload":"checkout"}"#, "{}", ""],
                    next(),
                );
                [
                    region,
                    product,
                    usage,
                    item,
                    cost.normalize().to_string(),
                    net,
                    from.to_owned(),
                    to.to_owned(),
                    resource,
                    tags,
                ]
            })
            .collect()
    }

    const MONTH_COLUMNS: [&str; 10] = [
        "product_region_code",
        "line_item_product_code",
        "line_item_usage_type",
        "line_item_line_item_type",
        "line_item_unblended_cost",
        "line_item_net_unblended_cost",
        "product_from_region_code",
        "product_to_region_code",
        "line_item_resource_id",
        "resource_tags",
    ];

    /// The month as CUR 2.0 CSV: the reference the Parquet reads must agree with.
    fn month_csv(rows: &[[String; 10]]) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header: Vec<&str> = MONTH_COLUMNS.to_vec();
        header.push("line_item_usage_start_date");
        w.write_record(&header).unwrap();
        for r in rows {
            let mut rec: Vec<&str> = r.iter().map(String::as_str).collect();
            rec.push("2026-10-01T00:00:00Z");
            w.write_record(&rec).unwrap();
        }
        String::from_utf8(w.into_inner().unwrap()).unwrap()
    }

    /// The month as Parquet written with `props`, `group` rows per row group: costs as
    /// optional doubles (absent nets null), strings optional (empty ones null).
    fn month_parquet(
        rows: &[[String; 10]],
        props: parquet::file::properties::WriterProperties,
        group: usize,
    ) -> Bytes {
        use parquet::data_type::DoubleType;
        let schema = MONTH_COLUMNS
            .iter()
            .map(|c| {
                if c.ends_with("_cost") {
                    format!("optional double {c};")
                } else {
                    format!("optional binary {c} (STRING);")
                }
            })
            .collect::<String>();
        let schema = format!(
            "message m {{ {schema} required int64 line_item_usage_start_date (TIMESTAMP(MILLIS,true)); }}"
        );
        let schema = Arc::new(parquet::schema::parser::parse_message_type(&schema).unwrap());
        let mut out = Vec::new();
        let mut w = SerializedFileWriter::new(&mut out, schema, Arc::new(props)).unwrap();
        for chunk in rows.chunks(group) {
            let mut rg = w.next_row_group().unwrap();
            for (c, name) in MONTH_COLUMNS.iter().enumerate() {
                let mut col = rg.next_column().unwrap().unwrap();
                let present: Vec<&String> = chunk
                    .iter()
                    .map(|r| &r[c])
                    .filter(|v| !v.is_empty())
                    .collect();
                let def: Vec<i16> = chunk.iter().map(|r| i16::from(!r[c].is_empty())).collect();
                if name.ends_with("_cost") {
                    let v: Vec<f64> = present.iter().map(|s| s.parse().unwrap()).collect();
                    col.typed::<DoubleType>()
                        .write_batch(&v, Some(&def), None)
                        .unwrap();
                } else {
                    let v: Vec<ByteArray> = present
                        .iter()
                        .map(|s| ByteArray::from(s.as_str()))
                        .collect();
                    col.typed::<ByteArrayType>()
                        .write_batch(&v, Some(&def), None)
                        .unwrap();
                }
                col.close().unwrap();
            }
            let mut col = rg.next_column().unwrap().unwrap();
            col.typed::<Int64Type>()
                .write_batch(&vec![1_790_812_800_000; chunk.len()], None, None)
                .unwrap();
            col.close().unwrap();
            rg.close().unwrap();
        }
        w.close().unwrap();
        Bytes::from(out)
    }

    fn scope() -> crate::cur::Scope {
        crate::cur::Scope {
            tag_key: "user_lifeboat_workload".into(),
            workload: "checkout".into(),
            resources: ["checkout-db".to_owned()].into_iter().collect(),
        }
    }

    /// Whether every row group of `data` is read page by page (without drills).
    fn pages_path(data: &Bytes) -> Vec<bool> {
        let reader = SerializedFileReader::new(data.clone()).unwrap();
        (0..reader.metadata().num_row_groups())
            .map(|g| {
                let rg = reader.metadata().row_group(g);
                // The month's columns, the start (INT64, not read) aside.
                rg.columns()[..MONTH_COLUMNS.len()].iter().all(supported)
            })
            .collect()
    }

    #[test]
    fn every_encoding_gives_the_sums_of_the_csv() {
        use parquet::basic::Encoding;
        use parquet::file::properties::{WriterProperties, WriterVersion};
        let rows = month(5_000);
        let text = month_csv(&rows);
        let base = || {
            WriterProperties::builder()
                .set_write_batch_size(64)
                .set_data_page_row_count_limit(300)
        };
        let shapes = [
            // Dictionaries throughout, v1 pages, several pages and row groups.
            ("dictionary v1", base().build(), true),
            // Dictionaries that overflow into PLAIN pages within a chunk.
            (
                "dictionary then plain",
                base().set_dictionary_page_size_limit(200).build(),
                true,
            ),
            (
                "plain v1",
                base().set_dictionary_enabled(false).build(),
                true,
            ),
            (
                "dictionary v2",
                base()
                    .set_writer_version(WriterVersion::PARQUET_2_0)
                    .build(),
                true,
            ),
            (
                "plain v2",
                base()
                    .set_writer_version(WriterVersion::PARQUET_2_0)
                    .set_dictionary_enabled(false)
                    .set_encoding(Encoding::PLAIN)
                    .build(),
                true,
            ),
            // DELTA_BYTE_ARRAY strings: the column readers' path.
            (
                "delta v2",
                base()
                    .set_writer_version(WriterVersion::PARQUET_2_0)
                    .set_dictionary_enabled(false)
                    .build(),
                false,
            ),
        ];
        for scoped in [false, true] {
            let new = || Aggregator::new(scoped.then(scope), vec![], false);
            let mut reference = new();
            reference
                .read("m.csv", text.as_bytes(), crate::cur::Compression::None)
                .unwrap();
            let reference = reference.finish();
            assert_eq!(reference.rows, 5_000);
            for (what, props, by_pages) in &shapes {
                let data = month_parquet(&rows, props.clone(), 1_700);
                let paths = pages_path(&data);
                assert_eq!(paths.len(), 3, "{what}");
                assert!(paths.iter().all(|p| p == by_pages), "{what}: {paths:?}");
                let mut agg = new();
                read(&mut agg, "m.parquet", data, None).unwrap();
                let got = agg.finish();
                assert_eq!(got.rows, reference.rows, "{what}");
                assert_eq!(got.matched_rows, reference.matched_rows, "{what}");
                assert_eq!(got.total, reference.total, "{what} scoped={scoped}");
                assert_eq!(got.total_unblended, reference.total_unblended, "{what}");
                assert_eq!(got.out_of_scope, reference.out_of_scope, "{what}");
                assert_eq!(got.cells, reference.cells, "{what}");
                assert_eq!(got.transfers, reference.transfers, "{what}");
                assert_eq!(got.line_item_types, reference.line_item_types, "{what}");
            }
        }
    }

    #[test]
    fn drills_read_row_by_row_agree_with_pages() {
        let rows = month(2_000);
        let data = month_parquet(
            &rows,
            parquet::file::properties::WriterProperties::builder().build(),
            900,
        );
        let mut pages = Aggregator::new(Some(scope()), vec![], false);
        read(&mut pages, "m.parquet", data.clone(), None).unwrap();
        let drill = crate::cur::DrillWindow {
            id: "d".into(),
            start_ms: 1_790_812_800_000,
            end_ms: 1_790_812_800_000 + 3_600_000,
            resources: std::collections::HashSet::new(),
        };
        let mut by_rows = Aggregator::new(Some(scope()), vec![drill], false);
        read(&mut by_rows, "m.parquet", data, None).unwrap();
        let (pages, by_rows) = (pages.finish(), by_rows.finish());
        assert_eq!(pages.cells, by_rows.cells);
        assert_eq!(pages.total, by_rows.total);
        assert_eq!(by_rows.drills, vec![("d".to_owned(), by_rows.total)]);
    }
}
