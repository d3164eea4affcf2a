//! Flat Parquet column chunks decoded page by page, for the aggregation's fast path
//! ([`crate::pq`]). The parquet crate's page reader gives the pages (decompressed); their
//! definition levels and values are decoded here, so that a dictionary-encoded column
//! costs one array lookup per row: each dictionary entry is mapped once per column chunk
//! (a string to an interned id, a double to its decimal), not once per row, and no
//! value is copied or reference-counted per row.
//!
//! What is decoded: data pages v1 and v2, `PLAIN` and dictionary (`PLAIN_DICTIONARY`,
//! `RLE_DICTIONARY`) values, `RLE` definition levels, of flat columns (no repetition).
//! That is what Data Exports and the usual writers produce; a row group with any other
//! encoding ([`supported`]) is read with the crate's column readers instead. Formats:
//! <https://parquet.apache.org/docs/file-format/data-pages/encodings/>.

use std::fmt::Write as _;
use std::str::FromStr;

use bytes::Bytes;
use parquet::basic::{Encoding, Type as Physical};
use parquet::column::page::{Page, PageReader};
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::ColumnChunkMetaData;
use rust_decimal::Decimal;

use crate::cur::{Amount, FIXED_SCALE, POW10_I128, money};

fn err(msg: impl Into<String>) -> ParquetError {
    ParquetError::General(msg.into())
}

/// Whether every page of this column chunk is one [`Chunk`] decodes.
// BIT_PACKED is deprecated as an encoding to write, not to be recognised.
#[allow(deprecated)]
pub(crate) fn supported(chunk: &ColumnChunkMetaData) -> bool {
    chunk.encodings().all(|e| {
        matches!(
            e,
            // BIT_PACKED: listed by some writers for the (absent) repetition levels of
            // flat columns; a page that really uses it is refused when read.
            Encoding::PLAIN
                | Encoding::PLAIN_DICTIONARY
                | Encoding::RLE_DICTIONARY
                | Encoding::RLE
                | Encoding::BIT_PACKED
        )
    }) && matches!(
        chunk.column_type(),
        Physical::BYTE_ARRAY | Physical::DOUBLE | Physical::FLOAT
    )
}

/// The shortest decimal that reads back as `v`: the number an exporter writing doubles
/// wrote, exactly. `None` for an infinity or NaN.
///
/// Fast path: the smallest `k` (0..=15) such that `m = round(v * 10^k)` has at most 15
/// digits and `m / 10^k` (one correctly rounded division of two exact doubles, so the
/// double nearest to the decimal `m·10^-k`) is `v`. A decimal of at most 15 significant
/// digits that reads back as `v` is the only one of its length (such decimals are
/// further apart than doubles are), so this is the decimal `Display` prints. Anything
/// else (16 or 17 digits, or a magnitude of 10^15 or more) takes `Display` itself.
///
/// The smallest `k` is found by bisection: if `k` reads back, so does every larger `k`
/// while `|v·10^k| < 10^15`. (Then `x = fl(v·10^k) = m'·(1+e)` with `m' = m·10^(k'-k)`
/// and `|m'·e| < 0.23`, so `x` rounds to `m'`, and `m'/10^k'` is the same rational as
/// `m/10^k`, so it rounds to the same double.) Four or five tries instead of up to 16.
/// Rounding is an add and a truncating conversion (`f64::round` is a libm call without
/// SSE4.1): `|x| < 10^15 < 2^50`, so `x ± 0.5` is exact and truncating it rounds half
/// away from zero, as `f64::round` does.
pub(crate) fn decimal_of_f64(v: f64) -> Option<Decimal> {
    if !v.is_finite() {
        return None;
    }
    let top = top_places(v);
    if let Some(mut m) = reads_back(v, top) {
        let (mut lo, mut hi) = (0, top);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match reads_back(v, mid) {
                Some(at) => {
                    hi = mid;
                    m = at;
                }
                None => lo = mid + 1,
            }
        }
        // `hi` ≤ 15.
        #[allow(clippy::cast_possible_truncation)]
        return Some(Decimal::new(m, hi as u32));
    }
    display_decimal(v)
}

/// [`decimal_of_f64`] as an [`Amount`] to sum, found with one try instead of a
/// bisection: the largest `k` in range reads back whenever any smaller one does, and
/// `m·10^-k` is then the same rational as the shortest decimal (see there), so
/// `m·10^(15-k)` is that decimal in units of 10^-15, exactly.
#[inline]
pub(crate) fn amount_of_f64(v: f64) -> Option<Amount> {
    if !v.is_finite() {
        return None;
    }
    let top = top_places(v);
    if let Some(m) = reads_back(v, top) {
        // `top` ≤ 15 = FIXED_SCALE, and |m| < 10^15 so the product is below 10^30.
        return Some(Amount::Fixed(
            i128::from(m) * POW10_I128[FIXED_SCALE as usize - top],
        ));
    }
    display_decimal(v).map(Amount::of)
}

const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// The largest `k` ≤ 15 with |v·10^k| < 10^15 (0 when there is none): |v·10^k| grows
/// with `k`.
#[inline]
fn top_places(v: f64) -> usize {
    let mut top = POW10.len() - 1;
    while top > 0 && (v * POW10[top]).abs() >= 1e15 {
        top -= 1;
    }
    top
}

/// `m` when `m = round(v·10^k)` has at most 15 digits and `m / 10^k` reads back as `v`.
#[inline]
fn reads_back(v: f64, k: usize) -> Option<i64> {
    let p = POW10[k];
    let x = v * p;
    if x.abs() >= 1e15 {
        return None;
    }
    // |x| < 10^15: both conversions are exact.
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let m = (x + 0.5f64.copysign(x)) as i64;
    #[allow(clippy::cast_precision_loss)]
    let back = m as f64 / p;
    (back == v).then_some(m)
}

/// `Display` of f64 (the shortest round-trip digits, never an exponent) as a decimal.
fn display_decimal(v: f64) -> Option<Decimal> {
    let mut text = String::with_capacity(32);
    write!(text, "{v}").ok()?;
    Decimal::from_str(&text).ok()
}

/// Bits needed for levels up to `max`.
fn bit_width(max: i16) -> u8 {
    let max = u16::try_from(max).unwrap_or(0);
    // At most 16: fits.
    #[allow(clippy::cast_possible_truncation)]
    let bits = (u16::BITS - max.leading_zeros()) as u8;
    bits
}

/// A reader of the RLE / bit-packed hybrid encoding (definition levels, dictionary
/// indices): runs of one repeated value, or of bit-packed groups of 8 values.
struct Hybrid {
    data: Bytes,
    /// The next run header.
    pos: usize,
    width: u8,
    /// Values left in the current repeated run, and its value.
    repeat: usize,
    value: u32,
    /// Values left in the current bit-packed run, and the bit offset of the next one.
    packed: usize,
    bit: usize,
}

impl Hybrid {
    fn new(data: Bytes, width: u8) -> Result<Hybrid> {
        if width > 32 {
            return Err(err(format!("bit width {width} over 32")));
        }
        Ok(Hybrid {
            data,
            pos: 0,
            width,
            repeat: 0,
            value: 0,
            packed: 0,
            bit: 0,
        })
    }

    fn uleb(&mut self) -> Result<usize> {
        let mut v = 0usize;
        for shift in (0..64).step_by(7) {
            let b = *self
                .data
                .get(self.pos)
                .ok_or_else(|| err("RLE/bit-packed data ends inside a run header"))?;
            self.pos += 1;
            v |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(err("RLE/bit-packed run header too long"))
    }

    fn next_run(&mut self) -> Result<()> {
        let header = self.uleb()?;
        let width = usize::from(self.width);
        if header & 1 == 1 {
            let groups = header >> 1;
            self.packed = groups * 8;
            self.bit = self.pos * 8;
            // Later runs start after this one's bytes; a short last run is read as far
            // as its values are needed.
            self.pos += groups * width;
        } else {
            self.repeat = header >> 1;
            let bytes = width.div_ceil(8);
            let raw = self
                .data
                .get(self.pos..self.pos + bytes)
                .ok_or_else(|| err("RLE/bit-packed data ends inside a repeated value"))?;
            self.value = raw
                .iter()
                .rev()
                .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
            self.pos += bytes;
        }
        if self.repeat == 0 && self.packed == 0 {
            return Err(err("empty RLE/bit-packed run"));
        }
        Ok(())
    }

    #[inline]
    fn unpack(&mut self) -> Result<u32> {
        let (byte, shift) = (self.bit / 8, self.bit % 8);
        let avail = self.data.get(byte..).unwrap_or_default();
        // A value (at most 32 bits from `shift` ≤ 7) lies in the next 8 bytes: one load
        // where there are 8 (all but the last few values of a page), else a copy.
        let word = if let Some(word) = avail.first_chunk::<8>() {
            u64::from_le_bytes(*word)
        } else {
            let needed = (shift + usize::from(self.width)).div_ceil(8);
            if avail.len() < needed {
                return Err(err("bit-packed run ends early"));
            }
            let mut word = [0u8; 8];
            word[..avail.len()].copy_from_slice(avail);
            u64::from_le_bytes(word)
        };
        self.bit += usize::from(self.width);
        let mask = (1u64 << self.width) - 1;
        // At most 32 bits: fits.
        #[allow(clippy::cast_possible_truncation)]
        let v = ((word >> shift) & mask) as u32;
        Ok(v)
    }

    /// Consumes the next `n` values if they all lie in the current (or next) repeated
    /// run and equal `value`; `false`, consuming nothing, otherwise.
    fn take_repeated(&mut self, n: usize, value: u32) -> Result<bool> {
        if self.repeat == 0 && self.packed == 0 {
            self.next_run()?;
        }
        if self.repeat >= n && self.value == value {
            self.repeat -= n;
            return Ok(true);
        }
        Ok(false)
    }

    /// Appends the next `n` values to `out`.
    fn read(&mut self, n: usize, out: &mut Vec<u32>) -> Result<()> {
        let mut left = n;
        out.reserve(n);
        while left > 0 {
            if self.repeat == 0 && self.packed == 0 {
                self.next_run()?;
            }
            if self.repeat > 0 {
                let k = left.min(self.repeat);
                out.extend(std::iter::repeat_n(self.value, k));
                self.repeat -= k;
                left -= k;
            } else {
                let k = left.min(self.packed);
                let width = usize::from(self.width);
                // Where 8 bytes can be loaded at every value's byte (all but the page's
                // last few values), a tight loop without per-value checks of the run.
                let fast = (self.bit + k * width) / 8 + 8 <= self.data.len();
                if fast {
                    let (data, start, mask) = (&self.data[..], self.bit, (1u64 << width) - 1);
                    out.extend((0..k).map(|j| {
                        let bit = start + j * width;
                        let word = data
                            .get(bit / 8..)
                            .and_then(<[u8]>::first_chunk::<8>)
                            .map_or(0, |w| u64::from_le_bytes(*w));
                        // At most 32 bits: fits.
                        #[allow(clippy::cast_possible_truncation)]
                        let v = ((word >> (bit % 8)) & mask) as u32;
                        v
                    }));
                    self.bit += k * width;
                } else {
                    for _ in 0..k {
                        let v = self.unpack()?;
                        out.push(v);
                    }
                }
                self.packed -= k;
                left -= k;
            }
        }
        Ok(())
    }
}

/// A data page's values.
enum Values {
    Dict(Hybrid),
    Plain { data: Bytes, pos: usize },
}

impl Values {
    fn plain(&mut self, len: usize) -> Result<&[u8]> {
        let Values::Plain { data, pos } = self else {
            return Err(err("not a PLAIN page"));
        };
        let v = data
            .get(*pos..*pos + len)
            .ok_or_else(|| err("PLAIN values end early"))?;
        *pos += len;
        Ok(v)
    }

    fn plain_bytes(&mut self) -> Result<&[u8]> {
        let mut len = [0u8; 4];
        len.copy_from_slice(self.plain(4)?);
        self.plain(u32::from_le_bytes(len) as usize)
    }
}

/// The data page being read.
struct DataPage {
    /// Levels (rows of a flat column) left in the page.
    left: usize,
    /// Definition levels; `None` when every value is present (a required column).
    def: Option<Hybrid>,
    values: Values,
}

/// A money value as decoded: a cost, null (or an empty string), or the text of a value
/// that is not a number.
#[derive(Debug, Clone)]
pub(crate) enum Cost {
    Null,
    Value(Amount),
    Bad(String),
}

/// A stretch of rows' costs, one `i128` a row: the amount in units of 10^-15
/// ([`Amount::Fixed`]), [`NULL`], or [`ELSEWHERE`] for the few that are not fixed point
/// (more places, too large, not a number), kept in `others` by row. Half the bytes of
/// a [`Cost`] a row, and no enum to match for nearly every row.
#[derive(Debug, Default)]
pub(crate) struct Costs {
    pub(crate) rows: Vec<i128>,
    pub(crate) others: Vec<(usize, Cost)>,
}

/// A null cost (or an empty string) in [`Costs::rows`].
pub(crate) const NULL: i128 = i128::MIN;
/// A cost in [`Costs::others`].
pub(crate) const ELSEWHERE: i128 = i128::MIN + 1;

impl Costs {
    pub(crate) fn clear(&mut self) {
        self.rows.clear();
        self.others.clear();
    }

    #[inline]
    fn push(&mut self, cost: Cost) {
        let row = match cost {
            Cost::Null => NULL,
            Cost::Value(Amount::Fixed(n)) if n > ELSEWHERE => n,
            other => {
                self.others.push((self.rows.len(), other));
                ELSEWHERE
            }
        };
        self.rows.push(row);
    }

    /// Row `row`'s cost when it is in `others`.
    pub(crate) fn other(&self, row: usize) -> Option<&Cost> {
        self.others
            .binary_search_by_key(&row, |(r, _)| *r)
            .ok()
            .and_then(|i| self.others.get(i))
            .map(|(_, c)| c)
    }
}

/// The cost of one PLAIN double (`b`: its 8 bytes).
#[inline]
fn double_cost(b: &[u8]) -> Cost {
    let v = f64::from_le_bytes(b.try_into().unwrap_or_default());
    match amount_of_f64(v) {
        Some(a) => Cost::Value(a),
        None => Cost::Bad(v.to_string()),
    }
}

/// Reads one PLAIN cost of a column of type `physical` called `name`.
fn plain_cost(physical: Physical, name: &'static str, values: &mut Values) -> Result<Cost> {
    let float = |v: f64| match amount_of_f64(v) {
        Some(a) => Cost::Value(a),
        None => Cost::Bad(v.to_string()),
    };
    Ok(match physical {
        Physical::DOUBLE => {
            let mut b = [0u8; 8];
            b.copy_from_slice(values.plain(8)?);
            float(f64::from_le_bytes(b))
        }
        Physical::FLOAT => {
            let mut b = [0u8; 4];
            b.copy_from_slice(values.plain(4)?);
            float(f64::from(f32::from_le_bytes(b)))
        }
        Physical::BYTE_ARRAY => {
            let b = values.plain_bytes()?;
            if b.is_empty() {
                Cost::Null
            } else {
                match money(b, name) {
                    Ok(d) => Cost::Value(Amount::of(d)),
                    Err(_) => Cost::Bad(crate::cur::excerpt(b)),
                }
            }
        }
        other => return Err(err(format!("a cost column of type {other}"))),
    })
}

/// The dictionary of the chunk, mapped as the role needs.
enum Dict {
    None,
    /// Strings, and the id each maps to (empty until the first stretch maps them all).
    Text {
        data: Bytes,
        spans: Vec<(usize, usize)>,
        ids: Vec<u32>,
    },
    /// Costs, as a stretch's rows are ([`Costs`]), with the dictionary index as row.
    Money(Costs),
}

/// What the values of a chunk are read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Strings, mapped to ids.
    Text,
    /// Costs: doubles, floats or decimal strings.
    Money,
}

/// One flat column chunk of a row group, read row by row in batches.
pub(crate) struct Chunk {
    pages: Box<dyn PageReader>,
    name: &'static str,
    physical: Physical,
    role: Role,
    max_def: i16,
    dict: Dict,
    page: Option<DataPage>,
    /// Scratch: definition levels and dictionary indices of the current stretch.
    levels: Vec<u32>,
    indices: Vec<u32>,
    /// The id of a null, once mapped.
    null_id: Option<u32>,
}

impl Chunk {
    /// The chunk of the column called `name` (for errors), read as `role`.
    pub(crate) fn new(
        pages: Box<dyn PageReader>,
        name: &'static str,
        physical: Physical,
        role: Role,
        max_def: i16,
    ) -> Chunk {
        Chunk {
            pages,
            name,
            physical,
            role,
            max_def,
            dict: Dict::None,
            page: None,
            levels: Vec::new(),
            indices: Vec::new(),
            null_id: None,
        }
    }

    /// The column's name.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    fn dictionary(&mut self, buf: &Bytes, count: usize) -> Result<()> {
        let mut values = Values::Plain {
            data: buf.clone(),
            pos: 0,
        };
        self.dict = match (self.role, self.physical) {
            (Role::Text, Physical::BYTE_ARRAY) => {
                let mut spans = Vec::with_capacity(count);
                for _ in 0..count {
                    let start = match &values {
                        Values::Plain { pos, .. } => *pos + 4,
                        Values::Dict(_) => 0,
                    };
                    let len = values.plain_bytes()?.len();
                    spans.push((start, start + len));
                }
                Dict::Text {
                    data: buf.clone(),
                    spans,
                    ids: Vec::with_capacity(count),
                }
            }
            (Role::Money, Physical::DOUBLE) => {
                // A dictionary of doubles can hold a row group's every value (one a row).
                let raw = values.plain(count * 8)?;
                let mut costs = Costs::default();
                costs.rows.reserve(count);
                for b in raw.chunks_exact(8) {
                    costs.push(double_cost(b));
                }
                Dict::Money(costs)
            }
            (Role::Money, _) => {
                let mut costs = Costs::default();
                for _ in 0..count {
                    costs.push(plain_cost(self.physical, self.name, &mut values)?);
                }
                Dict::Money(costs)
            }
            _ => return Err(err("a string column that is not BYTE_ARRAY")),
        };
        Ok(())
    }

    /// Moves to the next data page (reading a dictionary page on the way); `false` at the
    /// end of the chunk.
    fn next_page(&mut self) -> Result<bool> {
        loop {
            let Some(page) = self.pages.get_next_page()? else {
                return Ok(false);
            };
            let (buf, levels, def, values_at, encoding) = match page {
                Page::DictionaryPage {
                    buf,
                    num_values,
                    encoding,
                    ..
                } => {
                    if !matches!(encoding, Encoding::PLAIN | Encoding::PLAIN_DICTIONARY) {
                        return Err(err(format!("dictionary page encoding {encoding}")));
                    }
                    self.dictionary(&buf, num_values as usize)?;
                    continue;
                }
                Page::DataPage {
                    buf,
                    num_values,
                    encoding,
                    def_level_encoding,
                    ..
                } => {
                    let (def, at) = if self.max_def > 0 {
                        if def_level_encoding != Encoding::RLE {
                            return Err(err(format!(
                                "definition levels encoded {def_level_encoding}"
                            )));
                        }
                        let mut len = [0u8; 4];
                        len.copy_from_slice(
                            buf.get(..4)
                                .ok_or_else(|| err("page ends before its levels"))?,
                        );
                        let end = 4 + u32::from_le_bytes(len) as usize;
                        if end > buf.len() {
                            return Err(err("definition levels past the page's end"));
                        }
                        (
                            Some(Hybrid::new(buf.slice(4..end), bit_width(self.max_def))?),
                            end,
                        )
                    } else {
                        (None, 0)
                    };
                    (buf, num_values, def, at, encoding)
                }
                Page::DataPageV2 {
                    buf,
                    num_values,
                    encoding,
                    def_levels_byte_len,
                    rep_levels_byte_len,
                    ..
                } => {
                    let rep = rep_levels_byte_len as usize;
                    let end = rep + def_levels_byte_len as usize;
                    if end > buf.len() {
                        return Err(err("levels past the page's end"));
                    }
                    let def = if self.max_def > 0 {
                        Some(Hybrid::new(buf.slice(rep..end), bit_width(self.max_def))?)
                    } else {
                        None
                    };
                    (buf, num_values, def, end, encoding)
                }
            };
            let data = buf.slice(values_at..);
            let values = match encoding {
                Encoding::PLAIN => Values::Plain { data, pos: 0 },
                Encoding::PLAIN_DICTIONARY | Encoding::RLE_DICTIONARY => {
                    if matches!(self.dict, Dict::None) {
                        return Err(err("dictionary-encoded page without a dictionary"));
                    }
                    let width = data.first().copied().unwrap_or(0);
                    Values::Dict(Hybrid::new(data.slice(data.len().min(1)..), width)?)
                }
                other => return Err(err(format!("data page encoding {other}"))),
            };
            if levels > 0 {
                self.page = Some(DataPage {
                    left: levels as usize,
                    def,
                    values,
                });
                return Ok(true);
            }
        }
    }

    /// The next stretch of at most `n` rows within one page: how many rows, and how
    /// many of them have a value (their levels in `self.levels` unless all do).
    fn stretch(&mut self, n: usize) -> Result<(usize, usize, bool)> {
        if self.page.as_ref().is_none_or(|p| p.left == 0) && !self.next_page()? {
            return Err(err(format!("column {} ends early", self.name)));
        }
        let max_def = u32::try_from(self.max_def).unwrap_or(0);
        let Some(page) = self.page.as_mut() else {
            return Err(err("no page"));
        };
        let k = n.min(page.left);
        page.left -= k;
        self.levels.clear();
        match page.def.as_mut() {
            None => Ok((k, k, true)),
            Some(def) => {
                // Every row present (a repeated run of the top level): no levels to keep.
                if def.take_repeated(k, max_def)? {
                    return Ok((k, k, true));
                }
                def.read(k, &mut self.levels)?;
                let present = self.levels.iter().filter(|&&l| l == max_def).count();
                Ok((k, present, present == k))
            }
        }
    }

    /// Appends the ids of the next `n` rows to `out`: each value mapped by `map`, once
    /// per dictionary entry; a null is mapped as an empty string.
    pub(crate) fn ids(
        &mut self,
        n: usize,
        out: &mut Vec<u32>,
        map: &mut dyn FnMut(&[u8]) -> u32,
    ) -> Result<()> {
        let null = *self.null_id.get_or_insert_with(|| map(&[]));
        let max_def = u32::try_from(self.max_def).unwrap_or(0);
        let mut left = n;
        while left > 0 {
            let (k, present, all) = self.stretch(left)?;
            left -= k;
            let Chunk {
                page,
                dict,
                levels,
                indices,
                ..
            } = self;
            let Some(page) = page.as_mut() else {
                return Err(err("no page"));
            };
            match &mut page.values {
                Values::Dict(hybrid) => {
                    indices.clear();
                    hybrid.read(present, indices)?;
                    let Dict::Text { data, spans, ids } = dict else {
                        return Err(err("dictionary of another type"));
                    };
                    if ids.is_empty() && !spans.is_empty() {
                        // Each entry mapped once per chunk, all on the first stretch: a
                        // dictionary holds the chunk's distinct values, a few hundred.
                        ids.extend(
                            spans
                                .iter()
                                .map(|&(a, b)| map(data.get(a..b).unwrap_or_default())),
                        );
                    }
                    let id_of = |i: u32| -> Result<u32> {
                        ids.get(i as usize)
                            .copied()
                            .ok_or_else(|| err(format!("dictionary index {i} out of range")))
                    };
                    if all {
                        for &i in indices.iter() {
                            out.push(id_of(i)?);
                        }
                    } else {
                        let mut next = indices.iter();
                        for &level in levels.iter() {
                            if level == max_def {
                                let i = next.next().copied().unwrap_or(0);
                                out.push(id_of(i)?);
                            } else {
                                out.push(null);
                            }
                        }
                    }
                }
                values @ Values::Plain { .. } => {
                    if all {
                        for _ in 0..k {
                            out.push(map(values.plain_bytes()?));
                        }
                    } else {
                        for &level in levels.iter() {
                            if level == max_def {
                                out.push(map(values.plain_bytes()?));
                            } else {
                                out.push(null);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Appends the costs of the next `n` rows to `out`.
    pub(crate) fn costs(&mut self, n: usize, out: &mut Costs) -> Result<()> {
        let max_def = u32::try_from(self.max_def).unwrap_or(0);
        let mut left = n;
        while left > 0 {
            let (k, present, all) = self.stretch(left)?;
            left -= k;
            let Chunk {
                page,
                dict,
                levels,
                indices,
                physical,
                name,
                ..
            } = self;
            let Some(page) = page.as_mut() else {
                return Err(err("no page"));
            };
            match &mut page.values {
                Values::Dict(hybrid) => {
                    indices.clear();
                    hybrid.read(present, indices)?;
                    let Dict::Money(costs) = dict else {
                        return Err(err("dictionary of another type"));
                    };
                    let cost = |out: &mut Costs, i: u32| -> Result<()> {
                        let v = *costs
                            .rows
                            .get(i as usize)
                            .ok_or_else(|| err(format!("dictionary index {i} out of range")))?;
                        if v == ELSEWHERE {
                            let other = costs.other(i as usize).cloned().unwrap_or(Cost::Null);
                            out.push(other);
                        } else {
                            out.rows.push(v);
                        }
                        Ok(())
                    };
                    if all {
                        out.rows.reserve(indices.len());
                        for &i in indices.iter() {
                            cost(out, i)?;
                        }
                    } else {
                        let mut next = indices.iter();
                        for &level in levels.iter() {
                            if level == max_def {
                                cost(out, next.next().copied().unwrap_or(0))?;
                            } else {
                                out.rows.push(NULL);
                            }
                        }
                    }
                }
                values @ Values::Plain { .. } => {
                    if all && *physical == Physical::DOUBLE {
                        // One bounds check for the stretch, then 8 bytes a value.
                        let raw = values.plain(k * 8)?;
                        out.rows.reserve(k);
                        for b in raw.chunks_exact(8) {
                            out.push(double_cost(b));
                        }
                    } else if all {
                        for _ in 0..k {
                            out.push(plain_cost(*physical, name, values)?);
                        }
                    } else {
                        for &level in levels.iter() {
                            if level == max_def {
                                out.push(plain_cost(*physical, name, values)?);
                            } else {
                                out.rows.push(NULL);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn display(v: f64) -> Decimal {
        Decimal::from_str(&v.to_string()).unwrap()
    }

    #[test]
    fn doubles_become_the_decimal_they_print_as() {
        // As a decimal, and as the amount summed (one try, no bisection): the same value.
        let check = |v: f64| {
            assert_eq!(decimal_of_f64(v), Some(display(v)), "{v}");
            let amount = amount_of_f64(v).unwrap();
            assert_eq!(amount.decimal().unwrap(), display(v), "{v:e}: {amount:?}");
        };
        for v in [
            0.0,
            -0.0,
            1.0,
            0.1,
            0.096,
            0.0015,
            123.4560000001,
            1e-10,
            5e-11,
            199.9999999999,
            -3.25,
            0.1 + 0.2,
            1e14,
            999_999_999_999_999.0,
            1e15,
            1e16,
            1.5e20,
            2.5e-20,
            f64::MIN_POSITIVE,
            4.35,
            0.07,
        ] {
            check(v);
        }
        // Decimals of up to 12 places as an exporter writes them, and arbitrary bits.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..200_000u64 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let places = (x >> 60) as i32 % 13;
            let v = ((x >> 20) % 100_000_000_000_000) as f64 / 10f64.powi(places);
            let v = if i % 2 == 0 { v } else { -v };
            check(v);
            let bits = f64::from_bits(x);
            if bits.is_finite() && bits.abs() < 1e27 && bits.abs() > 1e-27 {
                check(bits);
            }
        }
        assert_eq!(decimal_of_f64(f64::NAN), None);
        assert_eq!(decimal_of_f64(f64::INFINITY), None);
        assert_eq!(amount_of_f64(f64::NAN), None);
        assert_eq!(amount_of_f64(f64::NEG_INFINITY), None);
    }

    #[test]
    fn costs_keep_fixed_amounts_in_line_and_the_rest_by_row() {
        let fine = Decimal::from_str("0.0000000000000000123").unwrap();
        let mut c = Costs::default();
        c.push(Cost::Value(Amount::Fixed(7)));
        c.push(Cost::Null);
        c.push(Cost::Value(Amount::Exact(fine)));
        c.push(Cost::Bad("abc".into()));
        // A fixed amount equal to a sentinel is kept by row, not taken for one.
        c.push(Cost::Value(Amount::Fixed(ELSEWHERE)));
        assert_eq!(c.rows, [7, NULL, ELSEWHERE, ELSEWHERE, ELSEWHERE]);
        assert!(matches!(c.other(2), Some(Cost::Value(Amount::Exact(d))) if *d == fine));
        assert!(matches!(c.other(3), Some(Cost::Bad(v)) if v == "abc"));
        assert!(matches!(
            c.other(4),
            Some(Cost::Value(Amount::Fixed(ELSEWHERE)))
        ));
        assert!(c.other(0).is_none());
        c.clear();
        assert!(c.rows.is_empty() && c.others.is_empty());
    }

    #[test]
    fn long_bit_packed_runs_decode_at_every_width() {
        // One bit-packed run of 40 groups (320 values), read in uneven stretches, so
        // that the loop over whole stretches and the checked tail both decode.
        for width in [1u8, 3, 7, 8, 13, 20, 31, 32] {
            let mask = if width == 32 {
                u32::MAX
            } else {
                (1u32 << width) - 1
            };
            let vals: Vec<u32> = (0..320u32)
                .map(|i| i.wrapping_mul(2_654_435_761) & mask)
                .collect();
            let mut data = vec![(40 << 1) | 1];
            let mut bits = vec![false; 320 * usize::from(width)];
            for (i, v) in vals.iter().enumerate() {
                for b in 0..usize::from(width) {
                    bits[i * usize::from(width) + b] = (v >> b) & 1 == 1;
                }
            }
            for byte in bits.chunks(8) {
                data.push(
                    byte.iter()
                        .enumerate()
                        .fold(0u8, |acc, (i, &b)| acc | (u8::from(b) << i)),
                );
            }
            let mut h = Hybrid::new(Bytes::from(data), width).unwrap();
            let mut out = Vec::new();
            for n in [1, 7, 100, 5, 200, 7] {
                h.read(n, &mut out).unwrap();
            }
            assert_eq!(out, vals, "width {width}");
            assert!(h.read(1, &mut out).is_err(), "width {width}: past the end");
        }
    }

    #[test]
    fn hybrid_runs_decode() {
        // A repeated run of 5 threes (width 4), then one bit-packed group of 0..8, then a repeated run of 2 sevens.
        let width = 4u8;
        let mut data = vec![5 << 1, 3];
        data.push((1 << 1) | 1);
        let vals: Vec<u32> = (0..8).collect();
        let mut packed = 0u64;
        for (i, v) in vals.iter().enumerate() {
            packed |= u64::from(*v) << (i * 4);
        }
        data.extend_from_slice(&packed.to_le_bytes()[..4]);
        data.extend_from_slice(&[2 << 1, 7]);
        let mut h = Hybrid::new(Bytes::from(data), width).unwrap();
        let mut out = Vec::new();
        h.read(3, &mut out).unwrap();
        h.read(12, &mut out).unwrap();
        assert_eq!(out, vec![3, 3, 3, 3, 3, 0, 1, 2, 3, 4, 5, 6, 7, 7, 7]);
        assert!(h.read(1, &mut out).is_err(), "past the end");
        // Width 0: every value is 0, no bytes.
        let mut h = Hybrid::new(Bytes::from(vec![4 << 1]), 0).unwrap();
        out.clear();
        h.read(4, &mut out).unwrap();
        assert_eq!(out, vec![0; 4]);
    }

    #[test]
    fn bit_widths() {
        assert_eq!(bit_width(0), 0);
        assert_eq!(bit_width(1), 1);
        assert_eq!(bit_width(2), 2);
        assert_eq!(bit_width(3), 2);
        assert_eq!(bit_width(4), 3);
    }
}
