"""The platform catalogue: the packaged data, and how the loader refuses bad data."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pydantic
import pytest

import sidestep.catalogue
from sidestep.catalogue import (
    Catalogue,
    CatalogueError,
    default_catalogue,
    load_catalogue,
)

REQUIRED = {
    "facebook", "instagram", "threads", "whatsapp", "messenger", "youtube",
    "google_business_profile", "linkedin", "tiktok", "x", "pinterest", "snapchat", "reddit",
    "telegram", "discord", "mastodon", "bluesky", "matrix", "vk",
    "email", "site", "feed", "webhook",
}  # fmt: skip
OWNED = {"email", "site", "feed", "webhook"}

VALID = """
[demo]
name = "Demo"
kind = "rented"
owner = "Demo Inc"
category = "social"
auth = "oauth2"
secret_fields = ["access_token"]
docs_url = "https://demo.example/docs"
api_base_urls = ["https://api.demo.example"]
hostnames = ["demo.example", "api.demo.example"]

[[demo.probes]]
name = "web"
url = "https://demo.example/"
feature = "web"

[[demo.probes]]
name = "api"
url = "https://api.demo.example/me"
feature = "api"
expect_status = [401]

[demo.limits]
text_max_chars = 500
media_kinds = ["image"]
max_media_count = 4
links_clickable = true
supports_threads = false
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "platforms.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_for(tmp_path: Path, text: str) -> CatalogueError:
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(write(tmp_path, text))
    return caught.value


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return default_catalogue()


# -- the packaged data --------------------------------------------------------------------


def test_it_loads_every_required_platform(catalogue: Catalogue) -> None:
    assert REQUIRED <= {platform.key for platform in catalogue}


def test_all_is_sorted_by_key(catalogue: Catalogue) -> None:
    keys = [platform.key for platform in catalogue.all()]
    assert keys == sorted(keys)
    assert [p.key for p in catalogue] == keys


def test_it_groups_meta_platforms_under_one_owner(catalogue: Catalogue) -> None:
    owners = catalogue.owners()
    assert owners["Meta"] == ["facebook", "instagram", "messenger", "threads", "whatsapp"]
    assert owners["Alphabet"] == ["google_business_profile", "youtube"]
    assert list(owners) == sorted(owners)


def test_owned_kinds_are_owned_by_self(catalogue: Catalogue) -> None:
    assert {p.key for p in catalogue.owned()} == OWNED
    assert all(p.owner == "self" for p in catalogue.owned())
    assert all(p.owner != "self" for p in catalogue.rented())


def test_every_rented_platform_has_web_and_api_probes(catalogue: Catalogue) -> None:
    for platform in catalogue.rented():
        features = {probe.feature for probe in platform.probes}
        assert {"web", "api"} <= features, platform.key
        assert platform.hostnames, platform.key


def test_the_big_platforms_also_probe_their_media_cdn(catalogue: Catalogue) -> None:
    keys = ["facebook", "instagram", "whatsapp", "x", "tiktok", "youtube", "pinterest",
            "snapchat", "telegram", "discord"]  # fmt: skip
    for key in keys:
        assert "media" in {probe.feature for probe in catalogue.get(key).probes}, key


def test_every_packaged_url_is_https(catalogue: Catalogue) -> None:
    for platform in catalogue:
        urls = [platform.docs_url, *platform.api_base_urls, *(p.url for p in platform.probes)]
        if platform.status_feed is not None:
            urls.append(platform.status_feed.url)
        assert all(urlsplit(url).scheme == "https" for url in urls), platform.key


def test_every_credentialed_platform_names_its_secret_fields(catalogue: Catalogue) -> None:
    for platform in catalogue:
        assert bool(platform.secret_fields) == (platform.auth != "none"), platform.key


def test_meta_platforms_are_served_by_metas_own_nameservers(catalogue: Catalogue) -> None:
    # 2021-10-04: these names vanished together when the routes to them were withdrawn.
    assert "a.ns.facebook.com" in catalogue.get("facebook").authoritative_nameservers
    assert "a.ns.instagram.com" in catalogue.get("instagram").authoritative_nameservers
    assert "a.ns.whatsapp.net" in catalogue.get("whatsapp").authoritative_nameservers


@pytest.mark.parametrize(
    ("key", "text_max_chars", "max_media_count"),
    [
        ("x", 280, 4),
        ("instagram", 2_200, 10),
        ("facebook", 63_206, 10),
        ("threads", 500, 20),
        ("linkedin", 3_000, 20),
        ("pinterest", 500, 5),
        ("tiktok", 2_200, 35),
        ("youtube", 5_000, 1),
        ("telegram", 4_096, 10),
        ("discord", 2_000, 10),
        ("mastodon", 500, 4),
        ("bluesky", 300, 4),
    ],
)
def test_it_carries_the_documented_content_limits(
    catalogue: Catalogue, key: str, text_max_chars: int, max_media_count: int
) -> None:
    limits = catalogue.get(key).limits
    assert (limits.text_max_chars, limits.max_media_count) == (text_max_chars, max_media_count)


def test_bluesky_limits_match_the_lexicon(catalogue: Catalogue) -> None:
    limits = catalogue.get("bluesky").limits
    assert limits.image_max_bytes == 2_000_000
    assert limits.video_max_bytes == 300_000_000


def test_platforms_without_a_public_posting_api_say_so(catalogue: Catalogue) -> None:
    assert not catalogue.get("snapchat").has_public_posting_api
    assert not catalogue.get("messenger").has_public_posting_api
    assert catalogue.get("instagram").has_public_posting_api


def test_platforms_are_frozen(catalogue: Catalogue) -> None:
    with pytest.raises(pydantic.ValidationError):
        catalogue.get("x").name = "Twitter"


def test_get_names_the_unknown_platform_and_the_known_ones(catalogue: Catalogue) -> None:
    with pytest.raises(CatalogueError) as caught:
        catalogue.get("myspace")
    message = str(caught.value)
    assert message.startswith("platforms.toml: unknown platform 'myspace'; known: bluesky,")
    assert "youtube" in message


def test_contains_tells_known_keys(catalogue: Catalogue) -> None:
    assert "instagram" in catalogue
    assert "myspace" not in catalogue
    assert len(catalogue) == len(catalogue.all())


def test_default_catalogue_is_loaded_once() -> None:
    assert default_catalogue() is default_catalogue()


def test_public_api_is_pinned() -> None:
    assert sorted(sidestep.catalogue.__all__) == [
        "Catalogue", "CatalogueError", "DEFAULT_CATALOGUE_PATH", "Limits", "Platform", "Probe",
        "Quotas", "StatusFeed", "default_catalogue", "load_catalogue",
    ]  # fmt: skip


# -- the loader refusing bad data ---------------------------------------------------------


def test_it_loads_a_minimal_valid_file(tmp_path: Path) -> None:
    catalogue = load_catalogue(write(tmp_path, VALID))
    demo = catalogue.get("demo")
    assert demo.probes[0].expect_status == [200]
    assert demo.quotas.posts_per_day is None
    assert demo.status_feed is None


def test_it_names_file_platform_and_field_on_a_wrong_type(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace("text_max_chars = 500", 'text_max_chars = "500"'))
    assert str(error).startswith(
        "platforms.toml: platform 'demo': field 'limits.text_max_chars': "
        "Input should be a valid integer"
    )
    assert (error.platform, error.field) == ("demo", "limits.text_max_chars")
    assert error.file.name == "platforms.toml"


def test_it_names_the_probe_by_index(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace('feature = "api"', 'feature = "ping"'))
    assert error.field == "probes[1].feature"


def test_it_reports_every_wrong_field(tmp_path: Path) -> None:
    text = VALID.replace("max_media_count = 4", "max_media_count = -1")
    error = error_for(tmp_path, text.replace('kind = "rented"', 'kind = "leased"'))
    lines = str(error).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("platforms.toml: platform 'demo': field 'kind': ")
    assert lines[1].startswith("platforms.toml: platform 'demo': field 'limits.max_media_count':")


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('category = "social"', 'category = "social"\ncolour = "blue"', "colour"),
        ("max_media_count = 4", "max_media_count = 4\nmax_minutes = 3", "limits.max_minutes"),
        ('feature = "web"', 'feature = "web"\ntimeout = 5', "probes[0].timeout"),
        ("[demo.limits]", "[demo.quotas]\nper_week = 3\n[demo.limits]", "quotas.per_week"),
    ],
)
def test_it_rejects_unknown_fields(tmp_path: Path, old: str, new: str, field: str) -> None:
    error = error_for(tmp_path, VALID.replace(old, new, 1))
    assert error.field == field
    assert "Extra inputs are not permitted" in str(error)


def test_it_rejects_a_syntax_error_with_line(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace('category = "social"', "category social"))
    assert str(error).startswith("platforms.toml: invalid TOML:")
    assert "line 6" in str(error)


def test_it_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match=r"^absent\.toml: cannot read the file"):
        load_catalogue(tmp_path / "absent.toml")


def test_it_rejects_an_empty_file(tmp_path: Path) -> None:
    assert "no platforms defined" in str(error_for(tmp_path, "# nothing yet\n"))


def test_it_rejects_an_uppercase_key(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace("demo", "Demo"))
    assert (error.platform, error.field) == ("Demo", "key")


def test_it_rejects_a_key_field_inside_the_table(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace('name = "Demo"', 'key = "demo"\nname = "Demo"'))
    assert error.field == "key"


def test_it_rejects_an_owned_platform_with_a_company_owner(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace('kind = "rented"', 'kind = "owned"'))
    assert error.field == "owner"
    assert "owned platforms are owned by 'self'" in str(error)


def test_it_rejects_a_rented_platform_owned_by_self(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace('owner = "Demo Inc"', 'owner = "self"'))
    assert error.field == "owner"


def test_it_rejects_a_rented_platform_without_hostnames(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace('"demo.example", "api.demo.example"', ""))
    assert error.field == "hostnames"


def test_it_rejects_a_rented_platform_without_an_api_base(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace('"https://api.demo.example"]', "]"))
    assert error.field == "api_base_urls"


def test_it_allows_no_api_base_when_there_is_no_public_posting_api(tmp_path: Path) -> None:
    text = VALID.replace(
        'api_base_urls = ["https://api.demo.example"]', "has_public_posting_api = false"
    )
    assert not load_catalogue(write(tmp_path, text)).get("demo").api_base_urls


def test_it_rejects_a_rented_platform_without_an_api_probe(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace('feature = "api"', 'feature = "status"'))
    assert error.field == "probes"
    assert "'web' and an 'api' probe" in str(error)


def test_it_rejects_duplicate_probe_names(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace('name = "api"', 'name = "web"'))
    assert error.field == "probes"
    assert "duplicate probe names: web" in str(error)


def test_it_rejects_a_zero_text_limit(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace("text_max_chars = 500", "text_max_chars = 0"))
    assert error.field == "limits.text_max_chars"


def test_it_rejects_http_urls_for_authenticated_platforms(tmp_path: Path) -> None:
    error = error_for(
        tmp_path, VALID.replace("https://api.demo.example/me", "http://api.demo.example/me")
    )
    assert error.field == "probes"
    assert "must use https" in str(error)


def test_it_allows_http_for_an_open_owned_endpoint(tmp_path: Path) -> None:
    text = """
[blog]
name = "Blog"
kind = "owned"
owner = "self"
category = "owned"
auth = "none"
docs_url = "http://blog.example/about"
status_feed = { kind = "rss", url = "http://blog.example/status.rss" }

[blog.limits]
text_max_chars = 1_000_000
media_kinds = []
max_media_count = 0
links_clickable = true
supports_threads = false
"""
    assert load_catalogue(write(tmp_path, text)).get("blog").status_feed is not None


def test_it_rejects_a_url_that_is_not_absolute(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace('"https://demo.example/docs"', '"/docs"'))
    assert error.field == "docs_url"


def test_it_rejects_a_hostname_with_a_scheme(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace('"api.demo.example"]', '"https://api.demo.example"]'))
    assert error.field == "hostnames[1]"


def test_it_rejects_an_impossible_status_code(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace("expect_status = [401]", "expect_status = [4010]"))
    assert error.field == "probes[1].expect_status[0]"
