"""The code that defines each cached artifact is unchanged since its version was recorded, or the change was
recorded (a refactor: `python -m lib.infra.artifacts record`) or versioned (a new outcome: raise `version`, then
record). Without this test a changed training loop or attack would silently reuse entries built by the old code."""
from lib.infra import artifacts


def test_every_artifact_is_recorded_at_its_version_with_its_code():
    recorded = artifacts.recorded()
    problems = []
    for kind, artifact in artifacts.all_artifacts().items():
        row = recorded.get(kind)
        if row is None:
            problems.append(f"{kind}: a new artifact, not recorded")
        elif row["version"] == artifact.version and row["code"] != artifact.code_hash():
            problems.append(f"{kind}: its code changed at version {artifact.version}")
        elif row["version"] != artifact.version and row["code"] == artifact.code_hash():
            problems.append(f"{kind}: version {row['version']} -> {artifact.version} with unchanged code: record it")
        elif row["version"] != artifact.version:
            problems.append(f"{kind}: version {row['version']} -> {artifact.version}: record it")
    gone = set(recorded) - set(artifacts.all_artifacts())
    problems += [f"{kind}: recorded, but no longer defined" for kind in sorted(gone)]
    assert not problems, (
        "; ".join(problems) + ". If the outcome is unchanged (a refactor), run `python -m lib.infra.artifacts record`; "
        "if it changed, raise the artifact's version first, then record.")
