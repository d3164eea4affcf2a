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

use std::fmt::Write as _;
use std::str::FromStr;

use parquet::basic::{LogicalType, TimeUnit, Type as Physical};
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, FloatType, Int64Type};
use parquet::file::reader::{ChunkReader, FileReader, RowGroupReader};
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::schema::types::ColumnDescriptor;
use rust_decimal::Decimal;

use crate::cur::{
    Aggregator, Defect, Fields, FileStats, ParseError, RowAt, RowError, Start, Table, money,
};

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

    fn money(&self, row: usize, buf: &mut String) -> Result<Option<Decimal>, RowError> {
        let Some(&i) = self.at.get(row) else {
            return Ok(None);
        };
        if i == usize::MAX {
            return Ok(None);
        }
        let float = |v: f64, buf: &mut String| -> Result<Option<Decimal>, RowError> {
            let bad = || {
                RowError::Defect(Defect::NotANumber {
                    column: self.leaf.name,
                    value: v.to_string(),
                })
            };
            if !v.is_finite() {
                return Err(bad());
            }
            // The shortest decimal that reads back as this double: the number the
            // exporter wrote, exactly (`Display` of f64 never uses an exponent).
            buf.clear();
            write!(buf, "{v}").map_err(|_| bad())?;
            Decimal::from_str(buf).map(Some).map_err(|_| bad())
        };
        match &self.values {
            Values::Double(_, v) => float(v.get(i).copied().unwrap_or_default(), buf),
            Values::Float(_, v) => float(f64::from(v.get(i).copied().unwrap_or_default()), buf),
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
    let mut buf = String::with_capacity(48);
    for group in 0..meta.num_row_groups() {
        let rg = reader
            .get_row_group(group)
            .map_err(|source| ParseError::Parquet {
                file: file.to_owned(),
                row_group: Some(group),
                column: None,
                source,
            })?;
        let open = |leaf: Leaf| Batch::open(rg.as_ref(), leaf, file, group);
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
        let mut tags = match plan.tags {
            Some(TagsAt::Map { key, value }) => Some((open(key)?, Some(open(value)?))),
            Some(TagsAt::Json(leaf)) => Some((open(leaf)?, None)),
            None => None,
        };
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
            let mut n = usize::MAX;
            for b in flat.iter_mut().chain(optional.iter_mut().flatten()) {
                let got = b.next(want, false).map_err(|e| fail(b.leaf, e))?;
                n = n.min(got);
                if got != want {
                    return Err(short(file, group, b.leaf, got, want));
                }
            }
            if let Some((k, v)) = tags.as_mut() {
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
            }
            let matches = tag_matches(agg, tags.as_ref(), want);
            let [net, from, to, resource, start] = &optional;
            let [product, usage, item, unblended, region] = flat.as_slice() else {
                return agg.file_done(file, rows, false, plan.table, "Parquet");
            };
            for row in 0..n.min(want) {
                rows += 1;
                let at = RowAt::Row {
                    row_group: group,
                    row: u64::try_from(done + row).unwrap_or(u64::MAX),
                };
                let result = (|| -> Result<(), RowError> {
                    let unblended = unblended.money(row, &mut buf)?.unwrap_or_default();
                    let cost = match net {
                        Some(net) => net.money(row, &mut buf)?.unwrap_or(unblended),
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
    }
    agg.file_done(file, rows, plan.net.is_some(), plan.table, "Parquet")
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
fn tag_matches(agg: &Aggregator, tags: Option<&(Batch, Option<Batch>)>, rows: usize) -> Vec<bool> {
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
}
