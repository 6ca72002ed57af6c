"""Images made to fit a platform's limits; hostile and broken files become readable errors."""

from __future__ import annotations

import io
import resource
import struct
import time
import zlib

import pytest
from PIL import Image

from sidestep.channels.images import (
    MAX_INPUT_BYTES,
    PIXEL_CAP,
    ImageError,
    UnreadableImage,
    fit_image,
    human_bytes,
)

FIVE_MB = 5 * 1024 * 1024


def photo(width: int, height: int, *, noise: int = 40) -> Image.Image:
    """Something like a photo: smooth gradients with sensor-like noise (JPEG cannot cheat)."""
    gradient = Image.linear_gradient("L").resize((width, height))
    grain = Image.effect_noise((width, height), noise)
    return Image.merge("RGB", (gradient, grain, gradient.transpose(Image.Transpose.ROTATE_180)))


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims `width`×`height` pixels, with almost no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_a_6000x4000_jpeg_is_shrunk_to_fit_5_mb_and_keeps_its_aspect() -> None:
    original = encoded(photo(6000, 4000), "JPEG", quality=95)
    assert len(original) > FIVE_MB  # otherwise the test proves nothing

    fitted = fit_image(original, max_bytes=FIVE_MB)

    assert len(fitted.data) <= FIVE_MB
    assert fitted.mime_type == "image/jpeg"
    with Image.open(io.BytesIO(fitted.data)) as result:
        assert result.format == "JPEG"
        assert result.size == (fitted.width_px, fitted.height_px)
        assert max(result.size) <= 4096
        assert result.width / result.height == pytest.approx(1.5, rel=0.01)
    assert fitted.change is not None
    assert fitted.change.startswith("re-encoded as JPEG ")
    assert "to fit 5 MB" in fitted.change


def test_an_image_that_fits_is_kept_byte_for_byte() -> None:
    original = encoded(photo(800, 600), "JPEG", quality=80)
    fitted = fit_image(original, max_bytes=FIVE_MB)
    assert fitted.data == original
    assert fitted.change is None
    assert (fitted.width_px, fitted.height_px) == (800, 600)


def test_an_image_wider_than_the_platform_takes_is_scaled_down_though_small_in_bytes() -> None:
    original = encoded(photo(3000, 1000, noise=1), "JPEG", quality=60)
    fitted = fit_image(original, max_bytes=FIVE_MB, max_side_px=1500)
    assert (fitted.width_px, fitted.height_px) == (1500, 500)
    assert fitted.change is not None and "within 1500px" in fitted.change


def transparent_logo(size: int) -> Image.Image:
    logo = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    logo.paste((200, 30, 30, 255), (size // 4, size // 4, 3 * size // 4, 3 * size // 4))
    return logo


def test_a_png_with_transparency_stays_a_png_when_the_png_fits() -> None:
    original = encoded(transparent_logo(3000), "PNG")
    fitted = fit_image(original, max_bytes=FIVE_MB, max_side_px=1000)
    assert fitted.mime_type == "image/png"
    with Image.open(io.BytesIO(fitted.data)) as result:
        assert result.size == (1000, 1000)
        assert result.mode == "RGBA"
        corner = result.getpixel((0, 0))
    assert isinstance(corner, tuple) and corner[3] == 0  # still transparent


def test_a_png_with_transparency_is_flattened_on_white_to_jpeg_when_no_png_fits() -> None:
    noisy = photo(800, 800, noise=120).convert("RGBA")
    noisy.putalpha(Image.linear_gradient("L").resize((800, 800)))
    original = encoded(noisy, "PNG", compress_level=1)
    limit = 200_000
    assert len(original) > limit

    fitted = fit_image(original, max_bytes=limit)

    assert fitted.mime_type == "image/jpeg"
    assert len(fitted.data) <= limit
    with Image.open(io.BytesIO(fitted.data)) as result:
        top_left = result.getpixel((0, 0))  # alpha 0 there: white shows through
    assert isinstance(top_left, tuple) and min(top_left) > 230


def test_an_exif_rotated_photo_comes_out_upright_and_without_its_exif() -> None:
    stored = Image.new("RGB", (400, 200), (220, 20, 20))
    stored.paste((20, 20, 220), (200, 0, 400, 200))  # left red, right blue, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": the left edge becomes the top
    exif[0x010F] = "Phone maker"
    original = encoded(stored, "JPEG", exif=exif.tobytes(), quality=95)

    fitted = fit_image(original, max_bytes=None, max_side_px=100)

    with Image.open(io.BytesIO(fitted.data)) as result:
        assert result.size == (50, 100)  # portrait, as the camera meant it
        top, bottom = result.getpixel((25, 10)), result.getpixel((25, 90))
        assert not result.getexif()  # orientation applied, maker and the rest dropped
    assert isinstance(top, tuple) and top[0] > 150 and top[2] < 100
    assert isinstance(bottom, tuple) and bottom[2] > 150 and bottom[0] < 100


def test_a_png_header_claiming_100000x100000_pixels_is_refused_without_decoding() -> None:
    bomb = png_header_only(100_000, 100_000)
    before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()

    with pytest.raises(UnreadableImage, match="could not be read: it claims more than 100 megapix"):
        fit_image(bomb, max_bytes=FIVE_MB)

    assert time.monotonic() - started < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_kb < 100_000


def test_an_image_just_over_the_pixel_cap_is_refused_too_not_only_twice_over_it() -> None:
    side = int((PIXEL_CAP * 1.2) ** 0.5)
    with pytest.raises(UnreadableImage, match="too many to open safely"):
        fit_image(png_header_only(side, side), max_bytes=None)


def test_garbage_bytes_are_an_unreadable_image() -> None:
    with pytest.raises(UnreadableImage, match="could not be read"):
        fit_image(b"this is not an image at all" * 10, max_bytes=FIVE_MB)


def test_an_empty_file_is_an_unreadable_image() -> None:
    with pytest.raises(UnreadableImage, match="could not be read"):
        fit_image(b"", max_bytes=FIVE_MB)


def test_a_truncated_jpeg_that_must_be_resized_is_an_unreadable_image() -> None:
    whole = encoded(photo(2000, 1500), "JPEG", quality=90)
    with pytest.raises(UnreadableImage, match="could not be read"):
        fit_image(whole[: len(whole) // 2], max_bytes=None, max_side_px=500)


def test_a_damaged_png_that_fits_is_refused_rather_than_sent() -> None:
    good = encoded(photo(50, 50), "PNG")
    damaged = good[:60] + bytes(b ^ 0xFF for b in good[60:80]) + good[80:]
    with pytest.raises(UnreadableImage, match="could not be read"):
        fit_image(damaged, max_bytes=FIVE_MB)


def test_a_file_larger_than_sidestep_reads_is_refused_unread() -> None:
    huge = b"\x89PNG\r\n\x1a\n" + bytes(MAX_INPUT_BYTES)
    with pytest.raises(UnreadableImage, match="Sidestep reads images up to 64 MB"):
        fit_image(huge, max_bytes=FIVE_MB)


def test_an_animated_gif_over_the_limit_is_refused_with_what_to_do() -> None:
    frames = [photo(300, 300, noise=100).convert("P") for _ in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    with pytest.raises(ImageError, match="does not resize animations: make it smaller than"):
        fit_image(buffer.getvalue(), max_bytes=10_000)


def test_a_bmp_is_converted_to_a_format_platforms_take() -> None:
    fitted = fit_image(encoded(photo(300, 200), "BMP"), max_bytes=FIVE_MB)
    assert fitted.mime_type == "image/jpeg"
    assert fitted.change is not None and "BMP is not widely accepted" in fitted.change


def test_an_image_that_cannot_get_small_enough_says_so() -> None:
    original = encoded(photo(1000, 1000, noise=200), "JPEG", quality=95)
    with pytest.raises(ImageError, match="cannot be made smaller than 1 KB, even at 320px"):
        fit_image(original, max_bytes=1024)


@pytest.mark.parametrize(
    ("size", "words"),
    [(5_242_880, "5 MB"), (2_000_000, "2 MB"), (8_388_608, "8 MB"), (1_500_000, "1.5 MB"),
     (64 * 1024 * 1024, "64 MB"), (1024, "1 KB"), (10, "10 bytes"), (2**30, "1 GB")],
)
def test_sizes_are_worded_as_platforms_word_their_limits(size: int, words: str) -> None:
    assert human_bytes(size) == words


# Metadata: an image that fits must not carry the phone's GPS position out.

GPS_INFO = 0x8825


def phone_exif(orientation: int = 1) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Phone maker"
    exif[0xA431] = "SERIAL-1234"  # BodySerialNumber
    exif[GPS_INFO] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    return exif.tobytes()


XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
       b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
       b'xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="48,51.48N"/>'
       b"</rdf:RDF></x:xmpmeta>")


def srgb_icc() -> bytes:
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert isinstance(profile, bytes)
    return profile


def pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB").tobytes()


def test_a_jpeg_that_fits_loses_its_gps_exif_and_xmp_losslessly_and_keeps_its_icc() -> None:
    icc = srgb_icc()
    original = encoded(photo(640, 480), "JPEG", quality=85, exif=phone_exif(), xmp=XMP,
                       icc_profile=icc)
    with Image.open(io.BytesIO(original)) as before:  # otherwise the test proves nothing
        assert before.getexif().get(GPS_INFO) and "xmp" in before.info

    fitted = fit_image(original, max_bytes=FIVE_MB)

    assert fitted.mime_type == "image/jpeg"
    assert fitted.change is not None and "metadata" in fitted.change
    assert b"Exif\x00" not in fitted.data and b"SERIAL-1234" not in fitted.data
    assert b"ns.adobe.com/xap" not in fitted.data and b"GPSLatitude" not in fitted.data
    with Image.open(io.BytesIO(fitted.data)) as result:
        assert not result.getexif()
        assert "xmp" not in result.info
        assert result.info.get("icc_profile") == icc
        assert result.size == (fitted.width_px, fitted.height_px) == (640, 480)
    assert pixels(fitted.data) == pixels(original)  # not re-encoded: the same pixels
    assert len(fitted.data) < len(original)


def test_a_jpeg_with_trailing_data_after_its_end_marker_loses_it_with_its_exif() -> None:
    original = encoded(photo(200, 100), "JPEG", exif=phone_exif()) + b"MotionPhoto video..."
    fitted = fit_image(original, max_bytes=FIVE_MB)
    assert fitted.data.endswith(b"\xff\xd9")
    assert pixels(fitted.data) == pixels(original)


def test_a_sideways_jpeg_that_fits_comes_out_upright_and_without_its_exif() -> None:
    stored = Image.new("RGB", (400, 200), (220, 20, 20))
    stored.paste((20, 20, 220), (200, 0, 400, 200))  # left red, right blue, as stored
    original = encoded(stored, "JPEG", exif=phone_exif(orientation=6), quality=95)

    fitted = fit_image(original, max_bytes=FIVE_MB)

    assert fitted.change is not None and fitted.change.startswith("re-encoded as JPEG 400px")
    assert "upright" in fitted.change
    with Image.open(io.BytesIO(fitted.data)) as result:
        assert result.size == (200, 400)
        assert not result.getexif()
        top, bottom = result.getpixel((100, 20)), result.getpixel((100, 380))
    assert isinstance(top, tuple) and top[0] > 150 and top[2] < 100
    assert isinstance(bottom, tuple) and bottom[2] > 150 and bottom[0] < 100


def test_a_png_with_an_exif_chunk_loses_it_and_stays_the_same_png() -> None:
    image = photo(120, 80)
    original = encoded(image, "PNG", exif=phone_exif())
    assert b"eXIf" in original

    fitted = fit_image(original, max_bytes=FIVE_MB)

    assert fitted.mime_type == "image/png"
    assert fitted.change is not None and "metadata" in fitted.change
    assert b"eXIf" not in fitted.data and b"SERIAL-1234" not in fitted.data
    with Image.open(io.BytesIO(fitted.data)) as result:
        result.load()
        assert not result.getexif()
        assert result.tobytes() == image.tobytes()


def test_a_webp_with_exif_and_xmp_chunks_loses_them_losslessly() -> None:
    image = photo(120, 80)
    original = encoded(image, "WEBP", lossless=True, exif=phone_exif(), xmp=XMP)
    assert b"EXIF" in original and b"XMP " in original

    fitted = fit_image(original, max_bytes=FIVE_MB)

    assert fitted.mime_type == "image/webp"
    assert b"SERIAL-1234" not in fitted.data and b"GPSLatitude" not in fitted.data
    with Image.open(io.BytesIO(fitted.data)) as result:
        assert not result.getexif() and "xmp" not in result.info
    assert pixels(fitted.data) == pixels(original)


@pytest.mark.parametrize(
    "original",
    [encoded(photo(300, 200), "JPEG", quality=80), encoded(photo(30, 20), "PNG"),
     encoded(photo(30, 20), "WEBP"), encoded(photo(30, 20).convert("P"), "GIF"),
     encoded(photo(30, 20), "JPEG", icc_profile=b"\x00" * 200)],
    ids=["jpeg", "png", "webp", "gif", "jpeg-with-icc"],
)
def test_an_image_without_metadata_is_kept_byte_for_byte(original: bytes) -> None:
    fitted = fit_image(original, max_bytes=FIVE_MB)
    assert fitted.data == original
    assert fitted.change is None


def test_a_jpeg_with_exif_whose_marker_stream_is_cut_short_is_refused_not_sent() -> None:
    whole = encoded(photo(400, 300), "JPEG", exif=phone_exif())
    for cut in (30, len(whole) // 2, len(whole) - 2):
        with pytest.raises(UnreadableImage, match="could not be read"):
            fit_image(whole[:cut], max_bytes=FIVE_MB)


def test_a_jpeg_with_exif_and_junk_between_markers_is_re_encoded_without_its_exif() -> None:
    whole = encoded(photo(400, 300), "JPEG", exif=phone_exif())
    at = whole.index(b"\xff\xdb")  # Pillow skips junk before a marker; the lossless cut does not
    fitted = fit_image(whole[:at] + b"\x00\x00" + whole[at:], max_bytes=FIVE_MB)
    assert fitted.change == "re-encoded as JPEG 400px to remove its metadata"
    assert b"SERIAL-1234" not in fitted.data
    with Image.open(io.BytesIO(fitted.data)) as result:
        assert not result.getexif()
