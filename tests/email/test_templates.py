from __future__ import annotations

import pytest

from sidestep.email.templates import (
    SampleSubscriber,
    TemplateError,
    lint,
    preview,
    render,
)

GOOD_HTML = '<p>Hi {{ subscriber.first_name }}</p><a href="{{ unsubscribe_url }}">Unsubscribe</a>'
GOOD_TEXT = "Hi {{ subscriber.first_name }}\nUnsubscribe: {{ unsubscribe_url }}\n"


def test_it_personalises_and_escapes_html_but_not_text() -> None:
    who = SampleSubscriber(email="a@example.com", name="<b>Zoë</b> & co",
                           fields={"city": "Lyon"}, tags=["vip"])
    out = render("Hello {{ subscriber.name }}",
                 "<p>{{ subscriber.name }} in {{ subscriber.fields.city }}</p>",
                 "{{ subscriber.name }} in {{ subscriber.fields.city }}", who,
                 {"unsubscribe_url": "https://x.example/u/t?a=1&b=2"})
    assert out.html == "<p>&lt;b&gt;Zoë&lt;/b&gt; &amp; co in Lyon</p>"
    assert out.text == "<b>Zoë</b> & co in Lyon"
    assert out.subject == "Hello <b>Zoë</b> & co"


def test_it_escapes_the_unsubscribe_url_inside_href() -> None:
    out = render("s", GOOD_HTML, "", SampleSubscriber(), {"unsubscribe_url": "https://x/u?a&b"})
    assert 'href="https://x/u?a&amp;b"' in out.html


def test_a_missing_custom_field_reads_as_empty() -> None:
    out = render("s", "", "[{{ subscriber.fields.city }}]", SampleSubscriber(), {})
    assert out.text == "[]"


@pytest.mark.parametrize("name", ["Eve\r\nBcc: victim@example.com", "Eve\nX-Evil: 1", "Eve\x00"])
def test_subjects_never_carry_line_breaks(name: str) -> None:
    out = render("Hi {{ subscriber.name }}", "", "x", SampleSubscriber(name=name), {})
    assert "\r" not in out.subject and "\n" not in out.subject and "\x00" not in out.subject
    assert out.subject.startswith("Hi Eve")


@pytest.mark.parametrize("hostile", [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ subscriber.__class__.__init__.__globals__ }}",
    "{{ subscriber.fields.__class__ }}",
    "{{ range.__globals__ }}",
    "{{ namespace.__init__.__globals__['os'] }}",
    "{{ lipsum.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ config }}",
    "{{ self.__init__.__globals__ }}",
    "{{ '{0.__class__}'.format(1) }}",
    "{{ 'a' * 100000000 }}",
    "{{ 9 ** 999999 }}",
    "{% for i in range(1000000000) %}x{% endfor %}",
    "{% include '/etc/passwd' %}",
    "{% extends 'base.html' %}",
    "{% import 'x' as y %}",
    "{% for x in %}",
    "{{ 1 / 0 }}",
    "{{ subscriber.fields.get.__self__ }}",
])
def test_hostile_or_broken_templates_raise_a_clear_template_error(hostile: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render("s", "", hostile, SampleSubscriber(), {})
    assert caught.value.part == "text"
    assert "text template" in str(caught.value)


def test_output_is_capped() -> None:
    loop = "{% for i in range(10000) %}{% for j in range(10000) %}xxxxxxxxxx{% endfor %}{% endfor %}"
    with pytest.raises(TemplateError, match="more than"):
        render("s", "", loop, SampleSubscriber(), {})


def test_the_error_names_the_line() -> None:
    with pytest.raises(TemplateError) as caught:
        render("s", "<p>ok</p>\n<p>{{ nope }}</p>", "", SampleSubscriber(), {})
    assert caught.value.part == "html" and caught.value.line == 2


def test_lint_accepts_a_good_campaign_template() -> None:
    assert lint("Hi {{ subscriber.first_name }}", GOOD_HTML, GOOD_TEXT) == []


def test_lint_errors_on_a_campaign_without_unsubscribe_link() -> None:
    problems = lint("Hi", "<p>Hello</p>", "Hello")
    errors = {(p.part, p.message) for p in problems if p.level == "error"}
    assert ("html", "no unsubscribe link: add {{ unsubscribe_url }}") in errors
    assert ("text", "no unsubscribe link: add {{ unsubscribe_url }}") in errors


def test_lint_allows_no_unsubscribe_link_outside_campaigns() -> None:
    assert lint("Hi", "", "Hello", campaign=False) == []


def test_lint_reports_unknown_variables_syntax_errors_and_hostile_access() -> None:
    problems = lint("Hi {{ campain.name }}", "<a href='{{ unsubscribe_url }}'>u</a>{% if %}",
                    "{{ ''.__class__ }} {{ unsubscribe_url }}")
    messages = [(p.level, p.part, p.message) for p in problems]
    assert ("error", "subject", "unknown variable 'campain'") in messages
    assert any(p.part == "html" and p.level == "error" for p in problems)
    assert lint("s", "", "{{ ''.__class__ }} {{ unsubscribe_url }}")[0].level == "error"


def test_lint_knows_the_callers_variables() -> None:
    assert lint("{{ campaign.name }}", "", "{{ unsubscribe_url }}", known=["campaign"]) == []


def test_lint_warns_about_safe_and_unlinked_unsubscribe_and_missing_text() -> None:
    problems = lint("s", "<p>{{ subscriber.name|safe }} {{ unsubscribe_url }}</p>", "")
    assert {p.level for p in problems} == {"warning"}
    assert len(problems) == 3


def test_preview_uses_a_sample_subscriber_and_placeholder_links() -> None:
    out = preview("Hi {{ subscriber.first_name }}", GOOD_HTML, GOOD_TEXT,
                  base_url="https://news.example")
    assert out.subject == "Hi Alex"
    assert "https://news.example/u/SAMPLE" in out.text
