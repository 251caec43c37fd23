//! Reading a CSV file as a stream: its encoding and separator guessed from
//! its start, its header, then one record at a time. Runs on a blocking
//! thread (the file may be a request body arriving over the network).

use std::io::{Cursor, Read};

use super::{Encoding, Options};
use crate::error::{CrmError, Result};

/// How much of a file its encoding and separator are guessed from.
const SNIFF: usize = 64 * 1024;

/// The longest record (row) read: past it, a quote left open would have
/// the rest of the file read as one value.
pub const MAX_RECORD: u64 = 16 * 1024 * 1024;

/// Bytes handed to the CSV reader, and where its current record began:
/// a record longer than [`MAX_RECORD`] stops the reading.
#[derive(Debug, Default)]
pub struct RecordGuard {
    read: std::sync::atomic::AtomicU64,
    record_start: std::sync::atomic::AtomicU64,
}

impl RecordGuard {
    /// The reader is at byte `at` of its input: a record starts there.
    pub fn record_at(&self, at: u64) {
        self.record_start.store(at, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The reader's input, counted against the guard.
struct Guarded(Box<dyn Read + Send>, std::sync::Arc<RecordGuard>);

impl Read for Guarded {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        use std::sync::atomic::Ordering::Relaxed;
        let n = self.0.read(out)?;
        let read = self.1.read.fetch_add(n as u64, Relaxed) + n as u64;
        if read.saturating_sub(self.1.record_start.load(Relaxed)) > MAX_RECORD {
            return Err(std::io::Error::other(format!(
                "a row is longer than {} MB: is a quote left open?",
                MAX_RECORD / 1024 / 1024
            )));
        }
        Ok(n)
    }
}

/// An opened file: its header, and the reader positioned at its first record.
pub struct Opened {
    pub headers: Vec<String>,
    pub records: csv::Reader<Box<dyn Read + Send>>,
    pub encoding: Encoding,
    pub delimiter: u8,
    /// Where the reader's current record began (see [`RecordGuard`]).
    pub guard: std::sync::Arc<RecordGuard>,
    /// The file was vCards, read as rows of contacts (`vcard::CardRows`).
    pub vcard: bool,
}

/// Opens `source` as CSV with the options' encoding and delimiter, or
/// those guessed from its first 64 KB.
pub fn open(mut source: Box<dyn Read + Send>, options: &Options) -> Result<Opened> {
    let mut start = Vec::with_capacity(SNIFF);
    (&mut source)
        .take(SNIFF as u64)
        .read_to_end(&mut start)
        .map_err(|err| CrmError::bad_input(&["file"], format!("the file could not be read: {err}")))?;
    if super::vcard::looks_like_vcard(&start) {
        let cards = super::vcard::CardRows::new(Box::new(Cursor::new(start).chain(source)));
        let options = Options {
            delimiter: Some(b','),
            encoding: Some(Encoding::Utf8),
            ..options.clone()
        };
        let mut opened = open(Box::new(cards), &options)?;
        opened.vcard = true;
        return Ok(opened);
    }
    let bom = start.starts_with(b"\xEF\xBB\xBF");
    if bom {
        start.drain(..3);
    }
    let encoding = options.encoding.unwrap_or_else(|| {
        if bom {
            return Encoding::Utf8;
        }
        match std::str::from_utf8(&start) {
            Ok(_) => Encoding::Utf8,
            // Cut mid-character at the end of what was read: still UTF-8.
            Err(err) if err.error_len().is_none() => Encoding::Utf8,
            Err(_) => Encoding::Latin1,
        }
    });
    let delimiter = options.delimiter.unwrap_or_else(|| guess_delimiter(&start));
    let whole: Box<dyn Read + Send> = Box::new(Cursor::new(start).chain(source));
    let text: Box<dyn Read + Send> = match encoding {
        Encoding::Utf8 => whole,
        Encoding::Latin1 => Box::new(Latin1(whole, Vec::new(), 0)),
    };
    let guard = std::sync::Arc::new(RecordGuard::default());
    let mut records = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .has_headers(true)
        .from_reader(Box::new(Guarded(text, guard.clone())) as Box<dyn Read + Send>);
    let headers = records
        .byte_headers()
        .map_err(|err| CrmError::bad_input(&["file"], format!("the file's header could not be read: {err}")))?
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim().to_owned())
        .collect::<Vec<_>>();
    if headers.iter().all(String::is_empty) {
        return Err(CrmError::bad_input(
            &["file"],
            "the file is empty: its first line must name the columns",
        ));
    }
    Ok(Opened {
        headers,
        records,
        encoding,
        delimiter,
        guard,
        vcard: false,
    })
}

/// The separator the header line uses most, outside quotes: `,` `;` tab
/// or `|` (`,` when none).
fn guess_delimiter(start: &[u8]) -> u8 {
    let mut counts = [0usize; 4];
    let candidates = [b',', b';', b'\t', b'|'];
    let mut quoted = false;
    for &byte in start {
        match byte {
            b'"' => quoted = !quoted,
            b'\n' | b'\r' if !quoted => break,
            _ if !quoted => {
                if let Some(i) = candidates.iter().position(|&c| c == byte) {
                    counts[i] += 1;
                }
            }
            _ => {}
        }
    }
    let (best, count) = counts
        .iter()
        .enumerate()
        .max_by_key(|(i, count)| (**count, std::cmp::Reverse(*i)))
        .unwrap_or((0, &0));
    if *count == 0 {
        b','
    } else {
        candidates[best]
    }
}

/// Windows-1252 bytes read as UTF-8.
struct Latin1(Box<dyn Read + Send>, Vec<u8>, usize);

impl Read for Latin1 {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.2 >= self.1.len() {
            let mut raw = [0u8; 16 * 1024];
            let n = self.0.read(&mut raw)?;
            if n == 0 {
                return Ok(0);
            }
            let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(&raw[..n]);
            self.1 = text.into_owned().into_bytes();
            self.2 = 0;
        }
        let n = out.len().min(self.1.len() - self.2);
        out[..n].copy_from_slice(&self.1[self.2..self.2 + n]);
        self.2 += n;
        Ok(n)
    }
}

/// A request body arriving in chunks, read on a blocking thread.
pub struct ChannelReader {
    chunks: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    current: bytes::Bytes,
}

impl ChannelReader {
    pub fn new(chunks: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>) -> Self {
        ChannelReader {
            chunks,
            current: bytes::Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(err)) => return Err(err),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
