"""Make an image fit a platform's limits (bytes and pixels), safely, with Pillow.

`fit_image` keeps an image that already fits and is in a format every platform takes
(JPEG, PNG, GIF, WebP), minus its metadata: EXIF (GPS position, camera serial, ...) and XMP
are cut out losslessly, without decoding a pixel -- JPEG APP1 "Exif"/XMP and APP13 IPTC
segments plus anything after the end-of-image marker (phones append videos and vendor
trailers there), PNG eXIf chunks and XMP / "Raw profile" text chunks, WebP EXIF and XMP
chunks. An image whose EXIF says to rotate it, or whose marker/chunk stream is malformed,
takes the re-encoding path below instead, which makes it upright. GIF carries no EXIF and
Pillow reads no GIF XMP: a GIF is kept as it is. An image without metadata is kept byte for
byte. Otherwise it decodes it, applies the EXIF orientation (so the result
is upright), drops every other EXIF field (GPS included), scales it down with its aspect
ratio kept, and re-encodes it: PNG when it has transparency and the PNG fits, else JPEG with
the quality stepped down, then smaller sizes, until it fits.

Hostile input is expected. Files over `MAX_INPUT_BYTES` are not read; images whose header
claims more than `PIXEL_CAP` pixels are refused before any pixel is decoded (Pillow's own
decompression-bomb guard is set to the same number, `Image.MAX_IMAGE_PIXELS`); JPEGs are
decoded at a reduced scale when they are to be shrunk anyway. Every failure is one exception,
`ImageError` (`UnreadableImage` when the bytes cannot or must not be decoded), whose
message completes the sentence "The image photo.jpg …" for a person.

This is CPU work: callers on the event loop run it in a thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import io
import math
import re
import struct
import warnings
from collections.abc import Collection
from dataclasses import dataclass

from PIL import Image, ImageOps

__all__ = [
    "COMMON_FORMATS",
    "DEFAULT_MAX_SIDE_PX",
    "MAX_INPUT_BYTES",
    "METADATA_REMOVED",
    "MIN_SIDE_PX",
    "PIXEL_CAP",
    "FittedImage",
    "ImageError",
    "UnreadableImage",
    "fit_image",
    "human_bytes",
]

# Larger files are refused unread: no platform takes an image this big.
MAX_INPUT_BYTES = 64 * 1024 * 1024
# 100 megapixels: above any phone camera's default output, ~300 MB decoded as RGB.
PIXEL_CAP = 100_000_000
# Pillow raises DecompressionBombError above twice this and warns above it; `_open` turns the
# warning into a refusal too, so nothing above PIXEL_CAP is ever decoded.
Image.MAX_IMAGE_PIXELS = PIXEL_CAP
# Longest side when the platform declares none: the largest X and Mastodon keep.
DEFAULT_MAX_SIDE_PX = 4096
# Below this an image is no longer worth posting; give up rather than send a thumbnail.
MIN_SIDE_PX = 320

_MIME_OF_FORMAT = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif",
                   "WEBP": "image/webp"}
# What nearly every platform takes; a platform that takes fewer passes its own.
COMMON_FORMATS = frozenset(_MIME_OF_FORMAT)
_JPEG_QUALITIES = (90, 80, 70, 60)
# How a kept image's `change` reads when only its metadata was cut out.
METADATA_REMOVED = "had its metadata (EXIF, XMP: location, camera) removed"
_EXIF_ORIENTATION = 0x0112


class ImageError(ValueError):
    """The image cannot be made to fit; the message completes "The image photo.jpg …"."""


class UnreadableImage(ImageError):
    """The bytes are not a readable image, or too large to decode safely."""


@dataclass(frozen=True, slots=True)
class FittedImage:
    """The image to send. `change` is None when the original bytes were kept."""

    data: bytes
    mime_type: str
    width_px: int
    height_px: int
    change: str | None = None

    @property
    def extension(self) -> str:
        return {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif",
                "image/webp": "webp"}[self.mime_type]


def human_bytes(size: int) -> str:
    """`5 MB` for 5,242,880 and for 5,000,000 alike: how platforms word their limits."""
    for unit, binary, decimal in (("GB", 2**30, 10**9), ("MB", 2**20, 10**6),
                                  ("KB", 2**10, 10**3)):
        if size >= decimal:
            value = size / binary if size % binary == 0 else size / decimal
            return f"{value:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


def fit_image(data: bytes, *, max_bytes: int | None, max_side_px: int = DEFAULT_MAX_SIDE_PX,
              keep_formats: Collection[str] = COMMON_FORMATS) -> FittedImage:
    """The image within `max_bytes` (None: no byte limit) and `max_side_px` on its longest side.

    Returns the original bytes when they already fit and are in one of `keep_formats`
    (Pillow's names: "JPEG", "PNG", ...), with their EXIF and XMP cut out if they had any
    (`change` is then METADATA_REMOVED); otherwise a re-encoded image whose
    `change` describes what was done ("re-encoded as JPEG 4096px to fit 5 MB"). Raises
    UnreadableImage when the bytes are not a readable image or too large to read safely,
    ImageError when the image cannot be made to fit.
    """
    if len(data) > MAX_INPUT_BYTES:
        raise UnreadableImage(f"is {human_bytes(len(data))}; Sidestep reads images up to "
                              f"{human_bytes(MAX_INPUT_BYTES)}")
    image = _open(data)
    width, height = image.size
    fmt = image.format or "unknown"
    fits_bytes = max_bytes is None or len(data) <= max_bytes
    keep = COMMON_FORMATS.intersection(keep_formats)
    reasons = []
    if fmt in keep and fits_bytes and max(width, height) <= max_side_px:
        _verify(data)
        stripped = _without_metadata(data, fmt)
        if stripped is not None and stripped.data == data:
            return FittedImage(data, _MIME_OF_FORMAT[fmt], width, height)  # nothing to remove
        animated = _animated(image)
        if stripped is not None and (animated or stripped.orientation in (None, 1)):
            return FittedImage(stripped.data, _MIME_OF_FORMAT[fmt], width, height,
                               METADATA_REMOVED)
        if stripped is None and animated:
            raise UnreadableImage(f"could not be read (its {fmt} structure is damaged)")
        # Sideways per its EXIF (cutting the EXIF out would turn it), or a malformed stream.
        reasons.append("to make it upright and remove its metadata" if stripped is not None
                       else "to remove its metadata")
    if _animated(image):
        raise ImageError(f"is an animated {fmt} of {human_bytes(len(data))} at {width}×{height}px "
                         "and Sidestep does not resize animations: make it smaller than "
                         f"{_limit_words(max_bytes, max_side_px)}")
    if not fits_bytes and max_bytes is not None:
        reasons.append(f"to fit {human_bytes(max_bytes)}")
    if max(width, height) > max_side_px:
        reasons.append(f"to stay within {max_side_px}px")
    if fmt not in keep:
        reasons.append(f"because {fmt} is not " + (
            "widely accepted" if fmt not in COMMON_FORMATS else "accepted here"))
    fitted = _reencode(image, max_bytes=max_bytes, max_side_px=max_side_px,
                       allow_png="PNG" in keep)
    kind = "PNG" if fitted.mime_type == "image/png" else "JPEG"
    change = (f"re-encoded as {kind} {max(fitted.width_px, fitted.height_px)}px "
              + " and ".join(reasons))
    return FittedImage(fitted.data, fitted.mime_type, fitted.width_px, fitted.height_px,
                       change)


def _open(data: bytes) -> Image.Image:
    """The image with only its header read; refuses unreadable data and decompression bombs."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnreadableImage(f"could not be read: it claims more than {PIXEL_CAP // 1_000_000} "
                              "megapixels, too many to open safely") from exc
    except Exception as exc:  # Pillow's format plugins raise many types on hostile bytes
        raise UnreadableImage("could not be read (it is damaged or not an image)") from exc
    width, height = image.size
    if width < 1 or height < 1:
        raise UnreadableImage("could not be read (it claims to have no pixels)")
    return image


def _animated(image: Image.Image) -> bool:
    return getattr(image, "n_frames", 1) > 1


def _verify(data: bytes) -> None:
    """Check a kept image's structure (checksums where the format has them)."""
    try:
        Image.open(io.BytesIO(data)).verify()
    except Exception as exc:  # as in _open: hostile bytes raise anything
        raise UnreadableImage("could not be read (it is damaged)") from exc


def _limit_words(max_bytes: int | None, max_side_px: int) -> str:
    side = f"{max_side_px}px on its longest side"
    return side if max_bytes is None else f"{human_bytes(max_bytes)} and {side}"


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info)


def _decode(image: Image.Image, side_px: int) -> Image.Image:
    """Decode (JPEGs at a reduced scale when possible), upright per EXIF, no other metadata."""
    width, height = image.size
    if image.format == "JPEG" and max(width, height) > side_px:
        scale = side_px / max(width, height)
        image.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
    try:
        image.load()
        upright = ImageOps.exif_transpose(image)
    except Exception as exc:  # truncated or corrupt pixel data, of any format
        raise UnreadableImage("could not be read (its pixel data is damaged)") from exc
    if _has_alpha(upright):
        return upright.convert("RGBA")
    return upright if upright.mode in ("RGB", "L") else upright.convert("RGB")


def _scaled(image: Image.Image, side_px: int) -> Image.Image:
    width, height = image.size
    if max(width, height) <= side_px:
        return image
    scale = side_px / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _encode(image: Image.Image, fmt: str, icc: bytes | None, **options: int | bool) -> bytes:
    buffer = io.BytesIO()
    if icc:
        image.save(buffer, fmt, icc_profile=icc, **options)
    else:
        image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _flatten(image: Image.Image) -> Image.Image:
    """An RGBA image on white: JPEG has no transparency, and black would hide dark logos."""
    if image.mode != "RGBA":
        return image
    background = Image.new("RGB", image.size, (255, 255, 255))
    background.paste(image, mask=image.getchannel("A"))
    return background


def _reencode(original: Image.Image, *, max_bytes: int | None, max_side_px: int,
              allow_png: bool) -> FittedImage:
    """Smaller and re-encoded until it fits: PNG if transparent, allowed and it fits, else
    JPEG."""
    icc = original.info.get("icc_profile")
    source_mode = original.mode
    side = min(max_side_px, max(original.size))
    decoded = _decode(original, side)
    alpha = decoded.mode == "RGBA" and allow_png
    # A colour profile describes the source's colour space: keep it only where that is still
    # the output's (an RGB profile on RGB), never a CMYK or grey profile on converted pixels.
    same_space = (source_mode in ("RGB", "RGBA") and decoded.mode in ("RGB", "RGBA")) or (
        source_mode == decoded.mode == "L")
    icc_bytes = icc if isinstance(icc, bytes) and same_space else None
    while True:
        image = _scaled(decoded, side)
        if alpha:
            # Once, at the largest size: a smaller transparent image is still worse than an
            # opaque one at full size, and PNG encoding is slow (no `optimize`: 10x slower).
            alpha = False
            png = _encode(image, "PNG", icc_bytes, compress_level=1)  # fast: photos, noise
            if max_bytes is not None and max_bytes < len(png) <= 2 * max_bytes:
                png = _encode(image, "PNG", icc_bytes)  # close: the default level may do it
            if max_bytes is None or len(png) <= max_bytes:
                return FittedImage(png, "image/png", *image.size)
        flat = _flatten(image)
        jpeg = b""
        for quality in _JPEG_QUALITIES:
            jpeg = _encode(flat, "JPEG", icc_bytes, quality=quality, optimize=True)
            if max_bytes is None or len(jpeg) <= max_bytes:
                return FittedImage(jpeg, "image/jpeg", *image.size)
        assert max_bytes is not None  # the loop returned otherwise
        # Bytes shrink roughly with the pixel count: aim a little under the limit.
        factor = min(0.9, max(0.5, math.sqrt(max_bytes / len(jpeg)) * 0.95))
        if side <= MIN_SIDE_PX:
            raise ImageError(f"cannot be made smaller than {human_bytes(max_bytes)}, "
                             f"even at {MIN_SIDE_PX}px")
        side = max(MIN_SIDE_PX, int(side * factor))


@dataclass(frozen=True, slots=True)
class _Stripped:
    """An image's bytes without metadata, and the EXIF orientation the metadata gave."""

    data: bytes
    orientation: int | None


def _without_metadata(data: bytes, fmt: str) -> _Stripped | None:
    """`data` with its EXIF and XMP cut out, losslessly; None when its structure is malformed.

    Returns `data` itself (the same bytes) when there was nothing to cut out."""
    if fmt == "JPEG":
        return _jpeg_without_metadata(data)
    if fmt == "PNG":
        return _png_without_metadata(data)
    if fmt == "WEBP":
        return _webp_without_metadata(data)
    return _Stripped(data, None)  # GIF: no EXIF; Pillow reads no GIF XMP


def _orientation(exif: bytes | None, xmp: bytes | None) -> int | None:
    """The EXIF orientation (1-8), or XMP's tiff:Orientation, as Pillow reads them."""
    if exif is not None:
        try:
            parsed = Image.Exif()
            parsed.load(exif)
            value = parsed.get(_EXIF_ORIENTATION)
        except Exception:  # hostile EXIF raises anything: call it sideways, re-encode
            return 0
        if value is not None:
            return value if isinstance(value, int) else 0
    if xmp is not None and (match := re.search(rb'tiff:Orientation(="|>)([0-9])', xmp)):
        return int(match[2])
    return None


# JPEG segments cut out: (marker, how the payload starts).
_JPEG_METADATA = (
    (0xE1, b"Exif\x00"),
    (0xE1, b"http://ns.adobe.com/xap/1.0/\x00"),  # XMP
    (0xE1, b"http://ns.adobe.com/xmp/extension/\x00"),  # extended XMP
    (0xED, b"Photoshop 3.0\x00"),  # IPTC: places, names
)


def _jpeg_without_metadata(data: bytes) -> _Stripped | None:
    """Walk the markers, copying every segment and the entropy-coded data except metadata.

    ICC profiles (APP2) and everything the decoder needs are kept, so the pixels are the
    same; nothing after EOI is kept. None on a malformed or truncated marker stream."""
    if not data.startswith(b"\xff\xd8"):
        return None
    kept = [b"\xff\xd8"]
    exif: bytes | None = None
    xmp: bytes | None = None
    size, pos = len(data), 2
    while True:
        start = pos
        if pos >= size or data[pos] != 0xFF:
            return None
        while pos < size and data[pos] == 0xFF:  # a marker, after optional fill bytes
            pos += 1
        if pos >= size:
            return None
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # EOI
            kept.append(data[start:pos])
            break
        if marker in (0x00, 0x01) or 0xD0 <= marker <= 0xD8:  # no length: stray or misplaced
            return None
        if pos + 2 > size:
            return None
        length = int.from_bytes(data[pos:pos + 2], "big")
        end = pos + length
        if length < 2 or end > size:
            return None
        payload = data[pos + 2:end]
        if any(marker == code and payload.startswith(tag) for code, tag in _JPEG_METADATA):
            if payload.startswith(b"Exif\x00") and exif is None:
                exif = payload
            elif payload.startswith(b"http://ns.adobe.com/xap/1.0/\x00") and xmp is None:
                xmp = payload
        else:
            kept.append(data[start:end])
        pos = end
        if marker == 0xDA:  # SOS: entropy-coded data up to the next real marker
            while True:
                found = data.find(b"\xff", pos)
                if found < 0 or found + 1 >= size:
                    return None  # truncated: no EOI
                after = data[found + 1]
                if after == 0x00 or 0xD0 <= after <= 0xD7:  # stuffed byte, restart marker
                    pos = found + 2
                    continue
                kept.append(data[end:found])
                pos = found
                break
    clean = b"".join(kept)
    return _Stripped(data if clean == data else clean, _orientation(exif, xmp))


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_XMP_KEYWORD = b"XML:com.adobe.xmp"


def _png_without_metadata(data: bytes) -> _Stripped | None:
    """Drop eXIf, XMP and "Raw profile type ..." (ImageMagick's EXIF/IPTC/XMP) text chunks.

    Chunks carry their own CRC, so the others are copied as they are; nothing after IEND."""
    if not data.startswith(_PNG_SIGNATURE):
        return None
    kept = [_PNG_SIGNATURE]
    exif: bytes | None = None
    xmp: bytes | None = None
    size, pos = len(data), len(_PNG_SIGNATURE)
    while True:
        if pos + 12 > size:
            return None
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        if end > size:
            return None
        body = data[pos + 8:pos + 8 + length]
        keyword = body.split(b"\x00", 1)[0] if kind in (b"tEXt", b"zTXt", b"iTXt") else b""
        if kind == b"eXIf":
            exif = exif if exif is not None else body
        elif keyword == _PNG_XMP_KEYWORD or keyword.startswith(b"Raw profile type "):
            if keyword == _PNG_XMP_KEYWORD and kind == b"iTXt" and xmp is None:
                xmp = body  # uncompressed or not, only read for an orientation
        else:
            kept.append(data[pos:end])
        pos = end
        if kind == b"IEND":
            break
    clean = b"".join(kept)
    return _Stripped(data if clean == data else clean, _orientation(exif, xmp))


# VP8X flags: EXIF and XMP present.
_WEBP_EXIF_FLAG, _WEBP_XMP_FLAG = 0x08, 0x04


def _webp_without_metadata(data: bytes) -> _Stripped | None:
    """Drop the EXIF and "XMP " chunks of an extended WebP, clearing their VP8X flags."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    riff_end = 8 + int.from_bytes(data[4:8], "little")
    if riff_end > len(data):
        return None
    chunks: list[bytes] = []
    exif: bytes | None = None
    xmp: bytes | None = None
    pos = 12
    while pos < riff_end:
        if pos + 8 > riff_end:
            return None
        kind = data[pos:pos + 4]
        length = int.from_bytes(data[pos + 4:pos + 8], "little")
        end = pos + 8 + length + (length & 1)  # chunks are padded to an even size
        if end > riff_end:
            return None
        body = data[pos + 8:pos + 8 + length]
        if kind == b"EXIF":
            exif = exif if exif is not None else body
        elif kind == b"XMP ":
            xmp = xmp if xmp is not None else body
        elif kind == b"VP8X" and length >= 1:
            flags = body[0] & ~(_WEBP_EXIF_FLAG | _WEBP_XMP_FLAG) & 0xFF
            chunks.append(data[pos:pos + 8] + bytes([flags]) + data[pos + 9:end])
        else:
            chunks.append(data[pos:end])
        pos = end
    if exif is None and xmp is None:
        return _Stripped(data, None)  # stale VP8X flags alone are left as they are
    body = b"WEBP" + b"".join(chunks)
    clean = b"RIFF" + len(body).to_bytes(4, "little") + body
    return _Stripped(clean, _orientation(exif, xmp))
