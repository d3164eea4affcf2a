//! S3 objects as the synchronous readers the parse core takes, for the blocking threads
//! of [`crate::parallel`]: a CSV part is one streaming GetObject bridged to
//! `std::io::Read`; a Parquet part is a [`ChunkReader`] over ranged GetObjects (the
//! footer, then each projected column chunk's pages), holding one block of at most
//! [`BLOCK`] bytes at a time. Ranged GETs: <https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html#API_GetObject_RequestSyntax>
//! (`Range: bytes=first-last`, answered with `Content-Range: bytes first-last/total`).

use std::io::Read;
use std::sync::Mutex;

use bytes::{Buf, Bytes};
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};
use tokio::runtime::Handle;

use crate::cur::SourceError;

/// The largest range fetched at once (and so held) per Parquet reader.
pub const BLOCK: u64 = 8 * 1024 * 1024;
/// What a page header read may need at most.
const HEADER_READ: u64 = 64 * 1024;

/// Why an object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The object is not there.
    #[error("s3://{bucket}/{key}: no such object")]
    NoSuchKey {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// The call failed.
    #[error("s3://{bucket}/{key}: GetObject failed")]
    Sdk {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The SDK's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The body broke off.
    #[error("s3://{bucket}/{key}: reading the body failed")]
    Body {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// One object of a bucket, read from a blocking thread through `handle`.
#[derive(Debug)]
pub struct S3Object {
    client: aws_sdk_s3::Client,
    handle: Handle,
    bucket: String,
    key: String,
    len: u64,
    block: Mutex<(u64, Bytes)>,
}

impl S3Object {
    /// Fetches the first bytes (up to [`BLOCK`]), which tell the format and the length.
    pub fn open(
        client: aws_sdk_s3::Client,
        handle: Handle,
        bucket: &str,
        key: &str,
    ) -> Result<S3Object, FetchError> {
        let mut o = S3Object {
            client,
            handle,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            len: 0,
            block: Mutex::new((0, Bytes::new())),
        };
        let (head, total) = o.fetch(0, 4096)?;
        o.len = total;
        o.block = Mutex::new((0, head));
        Ok(o)
    }

    /// The object's first bytes.
    pub fn head(&self) -> Bytes {
        self.block
            .lock()
            .map(|b| if b.0 == 0 { b.1.clone() } else { Bytes::new() })
            .unwrap_or_default()
    }

    /// The whole object as a stream, for CSV.
    pub fn stream(&self) -> Result<impl Read + Send + use<>, FetchError> {
        let out = self.handle.block_on(
            self.client
                .get_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .send(),
        );
        let obj = out.map_err(|e| self.sdk_error(e))?;
        Ok(tokio_util::io::SyncIoBridge::new_with_handle(
            obj.body.into_async_read(),
            self.handle.clone(),
        ))
    }

    fn sdk_error(
        &self,
        e: aws_sdk_s3::error::SdkError<aws_sdk_s3::operation::get_object::GetObjectError>,
    ) -> FetchError {
        if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
            FetchError::NoSuchKey {
                bucket: self.bucket.clone(),
                key: self.key.clone(),
            }
        } else {
            FetchError::Sdk {
                bucket: self.bucket.clone(),
                key: self.key.clone(),
                source: Box::new(e),
            }
        }
    }

    /// `len` bytes from `start` (fewer at the end), and the object's total length.
    fn fetch(&self, start: u64, len: u64) -> Result<(Bytes, u64), FetchError> {
        let last = start + len.max(1) - 1;
        let out = self.handle.block_on(async {
            let obj = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .range(format!("bytes={start}-{last}"))
                .send()
                .await
                .map_err(|e| self.sdk_error(e))?;
            let total = obj
                .content_range()
                .and_then(|r| r.rsplit('/').next())
                .and_then(|t| t.parse::<u64>().ok())
                .or_else(|| obj.content_length().and_then(|l| u64::try_from(l).ok()))
                .unwrap_or(0);
            let body = obj
                .body
                .collect()
                .await
                .map_err(|e| FetchError::Body {
                    bucket: self.bucket.clone(),
                    key: self.key.clone(),
                    source: Box::new(e),
                })?
                .into_bytes();
            Ok::<_, FetchError>((body, total))
        })?;
        Ok(out)
    }
}

impl Length for S3Object {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for S3Object {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let len = HEADER_READ.min(self.len.saturating_sub(start));
        let len = usize::try_from(len).map_err(|e| ParquetError::External(Box::new(e)))?;
        Ok(self.get_bytes(start, len)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let want = length as u64;
        if start + want > self.len {
            return Err(ParquetError::EOF(format!(
                "{} bytes at {start} of an object of {}",
                length, self.len
            )));
        }
        let mut block = self
            .block
            .lock()
            .map_err(|_| ParquetError::General("reader lock poisoned".into()))?;
        let (at, bytes) = &*block;
        if start >= *at && start + want <= at + bytes.len() as u64 {
            let from = usize::try_from(start - at).unwrap_or(0);
            return Ok(bytes.slice(from..from + length));
        }
        let fetch = want.max(BLOCK).min(self.len - start);
        let (got, _) = self
            .fetch(start, fetch)
            .map_err(|e| ParquetError::External(Box::new(SourceError(std::io::Error::other(e)))))?;
        if (got.len() as u64) < want {
            return Err(ParquetError::EOF(format!(
                "{} bytes at {start}, got {}",
                length,
                got.len()
            )));
        }
        let out = got.slice(0..length);
        *block = (start, got);
        Ok(out)
    }
}
