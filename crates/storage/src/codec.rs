//! Decompression of a RecordBatch's records section, for the few places that must look at single
//! records inside a client's batch (ListOffsets by timestamp). Never used on the produce or
//! fetch path: those move batches as they are.
//!
//! Codecs (batch attributes bits 0-2), as Kafka writes them:
//! - 1 gzip: one gzip stream;
//! - 2 snappy: either one raw snappy block (librdkafka) or the xerial framing of Java clients:
//!   the 16-byte header `82 'SNAPPY' 00 | version i32 | compatible i32`, then blocks of
//!   `length u32 | raw snappy block`;
//! - 3 lz4: the LZ4 frame format;
//! - 4 zstd: one zstd frame.
//!
//! A compressed batch holds at most `max.message.bytes`, but its records may claim far more
//! once decompressed (a decompression bomb): every codec stops at `max_bytes` of output and
//! answers [`CodecError::TooLarge`] instead of allocating more.

use std::borrow::Cow;
use std::io::Read;

/// The most a batch's records may take once decompressed.
pub const DECOMPRESSED_BYTES_MAX: usize = 64 << 20;

const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("unknown compression codec {0}")]
    UnknownCodec(u8),
    #[error("records decompress to more than {0} bytes")]
    TooLarge(usize),
    #[error("corrupt {codec} data: {reason}")]
    Corrupt { codec: &'static str, reason: String },
}

fn corrupt(codec: &'static str, reason: impl ToString) -> CodecError {
    CodecError::Corrupt {
        codec,
        reason: reason.to_string(),
    }
}

/// The records section of a batch compressed with `codec`, decompressed, at most `max_bytes`.
pub fn decompress(codec: u8, input: &[u8], max_bytes: usize) -> Result<Cow<'_, [u8]>, CodecError> {
    match codec {
        0 => Ok(Cow::Borrowed(input)),
        1 => read_capped("gzip", flate2::read::GzDecoder::new(input), max_bytes),
        2 if input.starts_with(XERIAL_MAGIC) => xerial_snappy(input, max_bytes),
        2 => {
            let mut out = Vec::new();
            raw_snappy(input, &mut out, max_bytes)?;
            Ok(Cow::Owned(out))
        }
        3 => read_capped("lz4", lz4_flex::frame::FrameDecoder::new(input), max_bytes),
        4 => {
            let decoder =
                ruzstd::decoding::StreamingDecoder::new(input).map_err(|e| corrupt("zstd", e))?;
            read_capped("zstd", decoder, max_bytes)
        }
        other => Err(CodecError::UnknownCodec(other)),
    }
}

/// `data` compressed with `codec`, in the form Kafka's Java clients write (snappy: xerial
/// framing in 32 KiB blocks, which librdkafka and kafka-python read too). Used when a topic's
/// `compression.type` asks the broker to recompress.
pub fn compress(codec: u8, data: &[u8]) -> Result<Vec<u8>, CodecError> {
    use std::io::Write;
    let io = |codec: &'static str| move |e: std::io::Error| corrupt(codec, e);
    match codec {
        0 => Ok(data.to_vec()),
        1 => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(data).map_err(io("gzip"))?;
            gz.finish().map_err(io("gzip"))
        }
        2 => {
            let mut out = XERIAL_MAGIC.to_vec();
            out.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]); // version 1, compatible with 1
            let mut encoder = snap::raw::Encoder::new();
            for chunk in data.chunks(XERIAL_BLOCK_BYTES) {
                let block = encoder
                    .compress_vec(chunk)
                    .map_err(|e| corrupt("snappy", e))?;
                let len = u32::try_from(block.len()).map_err(|e| corrupt("snappy", e))?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&block);
            }
            Ok(out)
        }
        3 => {
            let mut lz4 = lz4_flex::frame::FrameEncoder::new(Vec::new());
            lz4.write_all(data).map_err(io("lz4"))?;
            lz4.finish().map_err(|e| corrupt("lz4", e))
        }
        4 => Ok(ruzstd::encoding::compress_to_vec(
            data,
            ruzstd::encoding::CompressionLevel::Fastest,
        )),
        other => Err(CodecError::UnknownCodec(other)),
    }
}

/// Reads `reader` to its end, failing once it yields more than `max_bytes`.
fn read_capped(
    codec: &'static str,
    reader: impl Read,
    max_bytes: usize,
) -> Result<Cow<'static, [u8]>, CodecError> {
    let mut out = Vec::new();
    let limit = u64::try_from(max_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(codec, e))?;
    if out.len() > max_bytes {
        return Err(CodecError::TooLarge(max_bytes));
    }
    Ok(Cow::Owned(out))
}

/// Appends one raw snappy block to `out`, refusing before allocating when its stated length
/// would take `out` past `max_bytes`.
fn raw_snappy(block: &[u8], out: &mut Vec<u8>, max_bytes: usize) -> Result<(), CodecError> {
    let len = snap::raw::decompress_len(block).map_err(|e| corrupt("snappy", e))?;
    let start = out.len();
    if len > max_bytes.saturating_sub(start) {
        return Err(CodecError::TooLarge(max_bytes));
    }
    out.resize(start + len, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| corrupt("snappy", e))?;
    out.truncate(start + written);
    Ok(())
}

fn xerial_snappy(input: &[u8], max_bytes: usize) -> Result<Cow<'static, [u8]>, CodecError> {
    let mut rest = input
        .get(XERIAL_HEADER_LEN..)
        .ok_or_else(|| corrupt("snappy", "xerial header cut short"))?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt("snappy", "xerial block length cut short"))?;
        let len = u32::from_be_bytes(*len) as usize;
        let block = tail
            .get(..len)
            .ok_or_else(|| corrupt("snappy", "xerial block cut short"))?;
        raw_snappy(block, &mut out, max_bytes)?;
        rest = &tail[len..];
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sample() -> Vec<u8> {
        (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    #[test]
    fn every_codec_round_trips() {
        let data = sample();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        let mut xerial = XERIAL_MAGIC.to_vec();
        xerial.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        for chunk in data.chunks(32 * 1024) {
            let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
            xerial.extend_from_slice(&(block.len() as u32).to_be_bytes());
            xerial.extend_from_slice(&block);
        }
        let mut lz4 = lz4_flex::frame::FrameEncoder::new(Vec::new());
        lz4.write_all(&data).unwrap();
        let lz4 = lz4.finish().unwrap();
        let zstd = ruzstd::encoding::compress_to_vec(
            &data[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        let all = [
            (0, &data),
            (1, &gz),
            (2, &raw),
            (2, &xerial),
            (3, &lz4),
            (4, &zstd),
        ];
        for (codec, input) in all {
            let out = decompress(codec, input, DECOMPRESSED_BYTES_MAX).unwrap();
            assert_eq!(&out[..], &data[..], "codec {codec}");
        }
    }

    #[test]
    fn compress_then_decompress_is_the_identity() {
        let data = sample();
        for codec in 0..=4 {
            let packed = compress(codec, &data).unwrap();
            let out = decompress(codec, &packed, DECOMPRESSED_BYTES_MAX).unwrap();
            assert_eq!(&out[..], &data[..], "codec {codec}");
        }
        assert_eq!(compress(5, &data), Err(CodecError::UnknownCodec(5)));
    }

    #[test]
    fn bombs_stop_at_the_cap_and_garbage_is_an_error() {
        let data = vec![0u8; 1 << 20];
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        let zstd = ruzstd::encoding::compress_to_vec(
            &data[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        for (codec, input) in [(1, &gz), (2, &raw), (4, &zstd)] {
            assert_eq!(
                decompress(codec, input, 1000),
                Err(CodecError::TooLarge(1000))
            );
        }
        // A raw snappy block claiming 4 GiB is refused before anything is allocated.
        let claim = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        assert_eq!(
            decompress(2, &claim, DECOMPRESSED_BYTES_MAX),
            Err(CodecError::TooLarge(DECOMPRESSED_BYTES_MAX))
        );
        for codec in 1..=4 {
            assert!(decompress(codec, b"not compressed at all", 1 << 20).is_err());
        }
        assert_eq!(decompress(7, b"", 10), Err(CodecError::UnknownCodec(7)));
    }
}
