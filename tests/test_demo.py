from tests.conftest import Cli


def test_demo_loads_the_sample_publication_once(cli: Cli) -> None:
    first = cli("demo")
    assert first.exit_code == 0, first.output
    assert "sample feed: 23 new" in first.stdout
    assert "sample subscribers: 8 new" in first.stdout
    assert "ქართული ენის დღე" in first.stdout or "Parliament adopts" in first.stdout
    again = cli("demo")
    assert again.exit_code == 0, again.output
    assert "sample feed: 0 new, 0 updated, 23 unchanged" in again.stdout
    assert "sample subscribers: 0 new, 8 already there, 0 subscribed" in again.stdout
