"""The engine on generated archives: any member names and contents, every member reached."""

from __future__ import annotations

import io
import zipfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# Any characters a name can carry (zipfile itself cannot write surrogates, NUL or separators
# at the end); names are only reported, never used as paths.
member_names = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"), min_size=1, max_size=40
).filter(lambda name: not name.endswith(("/", "\\")) and name.strip("/\\."))


@settings(
    max_examples=25, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@given(members=st.dictionaries(member_names, st.binary(max_size=2000), min_size=1, max_size=5))
def test_generated_zips_are_walked_to_every_member(analyze, members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    report = analyze(buffer.getvalue(), "generated.zip")
    archive_meta = report[0]["metadata"]["archive"]
    assert archive_meta["extracted"] + len(archive_meta["skipped"]) >= len(set(members)) - 1
    assert len(report) >= 1
