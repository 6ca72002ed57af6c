"""Adapting one post to one channel: threads, shortening, links, variants, media.

These use stand-ins (the base adapter with a catalogue platform's limits, counting code
points) so the numbers are exact; the properties run every registered adapter.
"""

from __future__ import annotations

import io
from typing import ClassVar

import regex
from PIL import Image

import sidestep.channels.adapt as adapt_module
from sidestep.channels.adapt import adapt, numbering
from sidestep.channels.base import Adapter
from sidestep.domain.content import Content, MediaItem, MediaKind, Problem
from tests.channels.test_adapt_properties import (
    CLIENT,
    PERMALINK,
    PNG_1PX,
    WeightedLikeX,
    stand_in,
    thread_bodies,
)

SENTENCES = [
    "We open our second shop in Lyon on Saturday at ten.",
    "The first fifty visitors get a tote bag designed by our friends at Atelier Brun.",
    "There will be coffee from the roaster next door and a small concert at noon.",
    "Bring your loyalty card: points count double all weekend long, online too.",
    "Thank you for eight years of support, from the market stall to this.",
    "See you there! #Lyon #NewShop @atelierbrun",
]
LONG = " ".join(SENTENCES * 3)


def image(name: str = "photo.png", data: bytes = PNG_1PX) -> MediaItem:
    return MediaItem(kind=MediaKind.IMAGE, mime_type="image/png", data=data, filename=name)


def test_text_that_fits_is_kept_as_it_is() -> None:
    content = Content(text="Open late tonight #Lyon https://shop.example", link=PERMALINK,
                      media=(image(),), title="Tonight")
    result = adapt(content, stand_in("x"))
    assert result.parts == [content]
    assert result.changes == [] and result.problems == [] and result.ok


def test_long_text_on_x_becomes_a_numbered_thread_of_posts_within_280_characters() -> None:
    content = Content(text=LONG, link=PERMALINK, title="Lyon", media=(image(),))
    result = adapt(content, stand_in("x"))

    total = len(result.parts)
    assert total > 3
    assert result.changes == [f"split into a thread of {total} posts"]
    for index, part in enumerate(result.parts, 1):
        assert len(part.text) <= 280
        assert part.text.endswith(numbering(index, total))
        assert part.reply_to is None  # the dispatcher chains them at publish time
    first, *rest = result.parts
    assert (first.link, first.title, first.media) == (PERMALINK, "Lyon", (image(),))
    assert all(p.link is None and p.title == "" and p.media == () for p in rest)
    assert " ".join(thread_bodies(result)).split() == LONG.split()


def test_a_thread_part_ends_on_a_sentence_when_one_ends_late_enough() -> None:
    result = adapt(Content(text=LONG), stand_in("x"))
    for body in thread_bodies(result)[:-1]:
        assert body.endswith((".", "!", "#NewShop", "@atelierbrun")), body


def test_a_link_that_would_straddle_a_cut_goes_whole_into_the_next_part() -> None:
    url = "https://shop.example/collections/spring-2026/linen-shirt?colour=sand"
    text = "a " * 120 + url + " is the one"
    bodies = thread_bodies(adapt(Content(text=text), stand_in("x")))
    assert len(bodies) == 2
    assert url not in bodies[0] and bodies[1].startswith(url)


def test_a_word_longer_than_a_post_is_cut_between_emoji_never_inside_one() -> None:
    thumbs = "👍🏽"  # two code points, one grapheme cluster
    result = adapt(Content(text=thumbs * 300), stand_in("x"))
    assert result.ok and len(result.parts) == 3
    for body in thread_bodies(result):
        assert body and body == thumbs * (len(body) // 2)


def test_a_mention_inside_an_overlong_word_is_kept_whole() -> None:
    text = "x" * 260 + "@atelierbrun" + "y" * 100
    bodies = thread_bodies(adapt(Content(text=text), stand_in("x")))
    assert any("@atelierbrun" in body for body in bodies)
    assert "".join(bodies) == text


def test_a_long_thread_is_numbered_with_room_for_two_digits() -> None:
    text = " ".join(SENTENCES * 12)
    result = adapt(Content(text=text), stand_in("x"))
    total = len(result.parts)
    assert total >= 10
    assert all(len(p.text) <= 280 for p in result.parts)
    assert result.parts[-1].text.endswith(f" {total}/{total}")


def test_long_text_without_threads_is_shortened_at_a_word_with_a_link_to_the_full_post() -> None:
    text = " ".join(SENTENCES * 30)
    result = adapt(Content(text=text), stand_in("telegram"), permalink=PERMALINK)

    (part,) = result.parts
    assert len(part.text) <= 4096 and part.text.endswith(f"… {PERMALINK}")
    body = part.text.removesuffix(f"… {PERMALINK}")
    assert text.startswith(body) and text[len(body)] == " "  # cut between two words
    assert result.changes == [f"text shortened to {len(part.text):,} characters with a link to "
                              "the full post"]


def test_without_a_permalink_the_text_ends_with_an_ellipsis_and_the_note_says_so() -> None:
    result = adapt(Content(text=" ".join(SENTENCES * 30)), stand_in("telegram"))
    (part,) = result.parts
    assert part.text.endswith("…") and 4000 < len(part.text) <= 4096
    assert result.changes == [f"text shortened to {len(part.text):,} characters "
                              "(no link to the full post was available)"]


def test_links_are_taken_out_of_captions_where_they_are_not_clickable() -> None:
    content = Content(text="New drop! https://shop.example/drop\nOnly today #style",
                      link=PERMALINK, media=(image(),))
    result = adapt(content, stand_in("instagram"), permalink=PERMALINK)
    (part,) = result.parts
    assert part.text == "New drop!\nOnly today #style"
    assert part.link is None
    assert result.changes == ["link removed: Instagram does not make links in posts clickable "
                              "(put it in the profile's bio)"]


def test_a_long_instagram_caption_is_shortened_without_a_link_nobody_could_click() -> None:
    result = adapt(Content(text=" ".join(SENTENCES * 12), media=(image(),)),
                   stand_in("instagram"), permalink=PERMALINK)
    (part,) = result.parts
    assert len(part.text) <= 2200 and part.text.endswith("…") and PERMALINK not in part.text
    assert result.changes == [f"text shortened to {len(part.text):,} characters "
                              "(links are not clickable on Instagram)"]


def test_the_channels_variant_replaces_text_link_and_title_before_anything_else() -> None:
    content = Content(text="General text", link="https://general.example", title="General")
    variant = {"text": "Text for X only", "link": "https://x.example", "title": "X title",
               "ignored": 3}
    result = adapt(content, stand_in("x"), variant=variant)
    assert result.parts == [Content(text="Text for X only", link="https://x.example",
                                    title="X title")]
    assert result.changes == ["used this channel's own text and link and title"]


def test_a_variant_with_an_empty_link_removes_the_link() -> None:
    result = adapt(Content(text="Hi", link=PERMALINK), stand_in("x"), variant={"link": ""})
    assert result.parts[0].link is None


def test_a_variant_that_is_not_text_is_a_problem_not_a_crash() -> None:
    result = adapt(Content(text="Hi"), stand_in("x"), variant={"text": ["not", "text"]})
    assert result.problems == [Problem(
        "variant", "This channel's own text is not text (list); edit the post's variant.")]


def test_more_images_than_x_takes_are_spread_over_a_thread() -> None:
    images = tuple(image(f"{n}.png") for n in range(6))
    result = adapt(Content(text="Our new collection", media=images), stand_in("x"))
    assert [p.text for p in result.parts] == ["Our new collection 1/2", "2/2"]
    assert [len(p.media) for p in result.parts] == [4, 2]
    assert result.changes == ["6 media spread over 2 posts (X takes 4 per post)",
                              "split into a thread of 2 posts"]


def test_media_only_thread_parts_carry_their_number() -> None:
    images = tuple(image(f"{n}.png") for n in range(9))
    result = adapt(Content(text="", media=images), stand_in("x"))
    assert [p.text for p in result.parts] == ["1/3", "2/3", "3/3"]


def test_more_media_than_instagram_takes_keeps_the_first_ones_and_says_so() -> None:
    images = tuple(image(f"{n}.png") for n in range(12))
    result = adapt(Content(text="Carousel", media=images), stand_in("instagram"))
    (part,) = result.parts
    assert part.media == images[:10]
    assert result.changes == ["kept the first 10 of 12 media: Instagram takes at most 10 per post"]


def test_a_video_for_a_platform_that_takes_only_images_is_a_problem() -> None:
    video = MediaItem(kind=MediaKind.VIDEO, mime_type="video/mp4", data=b"\0" * 10,
                      filename="clip.mp4")
    result = adapt(Content(text="Watch", media=(video,)), stand_in("google_business_profile"))
    assert [p.code for p in result.problems] == ["media_kind"]
    assert "video" in result.problems[0].message and "clip.mp4" in result.problems[0].message


def noisy_jpeg(width: int, height: int) -> bytes:
    grain = Image.effect_noise((width, height), 60)
    buffer = io.BytesIO()
    Image.merge("RGB", (grain, grain.rotate(90, expand=False), grain)).save(
        buffer, "JPEG", quality=95)
    return buffer.getvalue()


def test_an_image_too_heavy_for_bluesky_is_reencoded_to_fit_and_its_public_url_dropped() -> None:
    data = noisy_jpeg(2400, 1600)
    assert len(data) > 2_000_000
    photo = MediaItem(kind=MediaKind.IMAGE, mime_type="image/png", data=data,
                      filename="photo.png", url="https://cdn.example/photo.png", alt="Shop")
    result = adapt(Content(text="The shop", media=(photo,)), stand_in("bluesky"))

    assert result.ok
    (fitted,) = result.parts[0].media
    assert fitted.size_bytes <= 2_000_000
    assert (fitted.mime_type, fitted.filename, fitted.url, fitted.alt) == (
        "image/jpeg", "photo.jpg", None, "Shop")
    (change,) = result.changes
    assert regex.fullmatch(r"image photo\.png re-encoded as JPEG \d+px to fit 2 MB", change)


def test_an_image_with_the_wrong_mime_type_is_kept_and_labelled_rightly() -> None:
    mislabelled = MediaItem(kind=MediaKind.IMAGE, mime_type="image/jpeg", data=PNG_1PX)
    (part,) = adapt(Content(text="x", media=(mislabelled,)), stand_in("x")).parts
    assert part.media[0].mime_type == "image/png" and part.media[0].data == PNG_1PX


def test_an_unreadable_image_is_a_problem_a_person_understands() -> None:
    result = adapt(Content(text="Look", media=(image("photo.jpg", b"<html>oops</html>"),)),
                   stand_in("x"))
    assert result.problems == [Problem(
        "media_unreadable", "The image photo.jpg could not be read (it is damaged or not an "
        "image).")]


def test_a_decompression_bomb_is_a_problem_not_a_crash() -> None:
    from tests.channels.test_images import png_header_only

    result = adapt(Content(text="Look", media=(image("bomb.png", png_header_only(10**5, 10**5)),)),
                   stand_in("x"))
    assert [p.code for p in result.problems] == ["media_unreadable"]
    assert "too many to open safely" in result.problems[0].message


def test_a_link_longer_than_a_whole_post_is_rejected_with_the_reason() -> None:
    url = "https://shop.example/" + "x" * 400
    result = adapt(Content(text=f"See {url}"), stand_in("x"))
    assert [p.code for p in result.problems] == ["too_long"]
    message = result.problems[0].message
    assert message == ("The link 'https://shop.example/xxxxxxxxxxxxxxxxxx…' is longer than "
                       "one X post can hold and cannot be cut: shorten it.")
    assert result.parts == [Content(text=f"See {url}")]  # shown as it is


def test_one_letter_with_hundreds_of_accents_is_rejected_rather_than_cut() -> None:
    result = adapt(Content(text="e" + "\u0301" * 400), stand_in("x"))
    assert [p.code for p in result.problems] == ["too_long"]
    assert "sequence of characters" in result.problems[0].message


def test_a_platforms_own_count_decides_what_fits() -> None:
    url = "https://shop.example/" + "x" * 100  # 121 code points, 23 the way X counts
    text = "a" * 250 + " " + url
    assert len(text) > 280
    result = adapt(Content(text=text), WeightedLikeX(client=CLIENT))
    assert [p.text for p in result.parts] == [text] and result.changes == []


class NeedsMedia(Adapter):
    platform: ClassVar[str] = "instagram"
    credential_fields: ClassVar[tuple[str, ...]] = ()

    def platform_problems(self, content: Content) -> list[Problem]:
        if content.media:
            return []
        return [Problem("media_required", "Instagram posts need a photo or a video.")]


def test_the_platforms_own_checks_join_the_problems_once() -> None:
    result = adapt(Content(text="Text only"), NeedsMedia(client=CLIENT))
    assert result.problems == [Problem("media_required",
                                       "Instagram posts need a photo or a video.")]
    assert not result.ok


def test_the_module_exports_what_its_callers_use() -> None:
    assert sorted(adapt_module.__all__) == ["Adaptation", "ELLIPSIS", "adapt", "numbering"]


class JpegOnly(Adapter):
    """Like Instagram: the catalogue says "image", the adapter knows only JPEG goes."""

    platform: ClassVar[str] = "instagram"
    credential_fields: ClassVar[tuple[str, ...]] = ()

    def platform_problems(self, content: Content) -> list[Problem]:
        return [Problem("media_kind", f"Instagram takes JPEG images; {m.filename} is "
                        f"{m.mime_type}.") for m in content.media if m.mime_type != "image/jpeg"]


def test_an_image_in_a_format_the_platform_refuses_is_converted_to_jpeg() -> None:
    result = adapt(Content(text="Logo", media=(image("logo.png"),)), JpegOnly(client=CLIENT))
    assert result.ok
    (converted,) = result.parts[0].media
    assert (converted.mime_type, converted.filename) == ("image/jpeg", "logo.jpg")
    with Image.open(io.BytesIO(converted.data)) as decoded:
        assert decoded.format == "JPEG"
    assert result.changes == ["image logo.png re-encoded as JPEG 1px because PNG is not "
                              "accepted here"]


class RefusesEveryImage(JpegOnly):
    def platform_problems(self, content: Content) -> list[Problem]:
        return [Problem("media_kind", "No images here.")] if content.media else []


def test_an_image_the_platform_refuses_in_any_format_is_left_for_validate_to_explain() -> None:
    result = adapt(Content(text="Logo", media=(image("logo.png"),)),
                   RefusesEveryImage(client=CLIENT))
    assert result.parts[0].media == (image("logo.png"),)
    assert result.problems == [Problem("media_kind", "No images here.")]
    assert result.changes == []
