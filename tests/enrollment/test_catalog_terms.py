"""The catalog a term at a time (GET /sections?term_id=) and the instructor's name on a section
(issue 28: a student's catalog shows one term's sections, with who teaches each)."""

from tests.enrollment.helpers import AVA, REGISTRAR


def test_the_sections_of_one_term_and_only_those(api):
    fall = api.as_(AVA).get("/sections?term_id=1&limit=1000").json()
    spring = api.as_(AVA).get("/sections?term_id=2").json()
    everything = api.as_(AVA).get("/sections?limit=1000").json()

    assert [s["id"] for s in spring] == [11]
    assert {s["term_id"] for s in fall} == {1} and len(fall) == 10
    assert len(everything) == 11


def test_a_term_filter_goes_with_the_search_and_the_course(api):
    in_spring = api.as_(AVA).get("/sections?term_id=2&q=449").json()
    in_fall = api.as_(AVA).get("/sections?term_id=1&course_id=4").json()

    assert [s["id"] for s in in_spring] == [11]
    assert [s["id"] for s in in_fall] == [1, 2]


def test_an_unknown_term_is_404_and_a_malformed_one_422(api):
    missing = api.as_(AVA).get("/sections?term_id=99")
    malformed = api.as_(AVA).get("/sections?term_id=fall")

    assert missing.status_code == 404 and "term 99" in missing.json()["detail"]
    assert malformed.status_code == 422
    assert malformed.json()["errors"][0]["field"] == "term_id"


def test_a_section_names_its_instructor_and_none_without_one(api):
    taught = api.as_(AVA).get("/sections/1").json()
    untaught = api.as_(AVA).get("/sections/11").json()
    listed = {s["id"]: s for s in api.as_(REGISTRAR).get("/sections?limit=1000").json()}

    assert taught["instructor_name"] == "Kenneth Avery"
    assert untaught["instructor_id"] is None and untaught["instructor_name"] is None
    assert listed[1]["instructor_name"] == "Kenneth Avery"
