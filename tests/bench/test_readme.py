"""README's Performance section is generated from bench/results/latest.md (``python -m bench.readme``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import readme

PROSE = "# Project\n\n## Performance\n\nHow it is measured.\n\n"
AFTER = "\n\n## Next section\n\nUnrelated.\n"


def test_readme_is_what_bench_readme_writes_from_the_committed_summary() -> None:
    assert readme.README.read_text() == readme.render(), "README.md is stale: run python -m bench.readme"


def test_generated_section_sits_under_the_performance_heading() -> None:
    text = readme.README.read_text()
    performance = text.index("## Performance\n")
    begin, end = text.index(readme.BEGIN), text.index(readme.END)

    between = text[performance + 1 : begin]

    assert performance < begin < end
    assert "\n## " not in between  # no other top-level section in between


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    """A README with a stale section and a run's summary in results/latest.md."""
    readme_path = tmp_path / "README.md"
    readme_path.write_text(f"{PROSE}{readme.BEGIN}\nold numbers\n{readme.END}{AFTER}")
    latest = tmp_path / "results" / "latest.md"
    latest.parent.mkdir()
    latest.write_text("### Latest run: today\n\nnew numbers\n")
    return readme_path, latest


def test_rewrites_only_the_marked_section(files: tuple[Path, Path]) -> None:
    readme_path, latest = files
    args = ["--readme", str(readme_path), "--latest", str(latest)]

    stale = readme.main([*args, "--check"])
    rewritten = readme.main(args)
    fresh = readme.main([*args, "--check"])

    text = readme_path.read_text()
    assert (stale, rewritten, fresh) == (1, 0, 0)
    assert text.startswith(PROSE) and text.endswith(AFTER)
    assert "old numbers" not in text and "### Latest run: today\n\nnew numbers" in text
    assert "latest.png" not in text  # no plot to link


def test_links_the_plot_next_to_the_summary(files: tuple[Path, Path]) -> None:
    readme_path, latest = files
    latest.with_name("latest.png").write_bytes(b"\x89PNG\r\n\x1a\n")

    readme.main(["--readme", str(readme_path), "--latest", str(latest)])

    assert "](results/latest.png)" in readme_path.read_text()


@pytest.mark.parametrize(
    "text",
    ["no markers", f"{readme.END}\n{readme.BEGIN}", f"{readme.BEGIN}{readme.END}{readme.BEGIN}{readme.END}"],
)
def test_refuses_a_readme_without_one_pair_of_markers(text: str) -> None:
    with pytest.raises(ValueError, match="bench:begin"):
        readme.splice(text, "section")


def test_links_the_full_runs_kept_per_kind_of_cpu(files: tuple[Path, Path]) -> None:
    readme_path, latest = files
    (latest.parent / "cpu-amd-epyc-avx512-bf16.md").write_text("### Latest run: earlier\n")

    readme.main(["--readme", str(readme_path), "--latest", str(latest)])

    assert "[amd-epyc-avx512-bf16](results/cpu-amd-epyc-avx512-bf16.md)" in readme_path.read_text()
