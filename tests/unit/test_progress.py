"""Progress lines: items and bytes of the total, rate since the start, time left at that rate."""

from qdrant_ops.progress import Progress, duration, size


def test_a_line_per_finished_piece_with_bytes_rate_and_eta():
    now = [0.0]
    lines: list[str] = []
    progress = Progress("restore", "snapshots recovered", 4, 4 * 1024**3, lines.append, clock=lambda: now[0])
    now[0] = 10.0
    progress.done("cities shard 0 recovered on http://q1:6333", 1024**3)
    assert lines[-1] == (
        "progress: restore 1/4 snapshots recovered, 1.0 GiB of 4.0 GiB (25%), 102.4 MiB/s, ETA 0m30s: "
        "cities shard 0 recovered on http://q1:6333"
    )
    now[0] = 40.0
    for shard in (1, 2, 3):
        progress.done(f"cities shard {shard}", 1024**3)
    assert lines[-1].startswith("progress: restore 4/4 snapshots recovered, 4.0 GiB of 4.0 GiB (100%)")
    assert "ETA" not in lines[-1]


def test_without_a_byte_total_the_eta_follows_the_items():
    now = [0.0]
    lines: list[str] = []
    progress = Progress("backup", "shards of cities", 3, 0, lines.append, clock=lambda: now[0])
    now[0] = 120.0
    progress.done("shard 0", 5 * 1024**2)
    assert lines == ["progress: backup 1/3 shards of cities, 5.0 MiB, ETA 4m00s: shard 0"]


def test_sizes_and_durations_read_as_a_person_writes_them():
    assert [size(n) for n in (0, 1023, 1024, 1536 * 1024, 3 * 1024**4)] == [
        "0 B", "1023 B", "1.0 KiB", "1.5 MiB", "3.0 TiB"
    ]  # fmt: skip
    assert [duration(s) for s in (0, 59.9, 61, 3600, 7322)] == ["0m00s", "0m59s", "1m01s", "1h00m", "2h02m"]
