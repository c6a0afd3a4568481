"""Progress lines: items and bytes of the total, rate since the start, time left at that rate."""

from qdrant_ops.progress import Progress, ProgressLine, duration, size


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


def test_a_large_piece_reports_its_bytes_while_it_moves_at_most_once_per_interval():
    now = [0.0]
    lines: list[str] = []
    clock = lambda: now[0]  # noqa: E731
    progress = Progress("download", "snapshots", 2, 8 * 1024**3, lines.append, clock=clock, interval=10)
    for second in range(1, 31):  # 30 s of a 6 GiB object arriving at 100 MiB/s
        now[0] = float(second)
        progress.advance("cities shard 0", 100 * 1024**2)
    assert len(lines) == 3  # at 10, 20 and 30 s, not one per chunk
    assert lines[-1] == (
        "progress: download 0/2 snapshots, 2.9 GiB of 8.0 GiB (37%), 100.0 MiB/s, ETA 0m51s: cities shard 0"
    )
    now[0] = 60.0
    progress.done("cities shard 0 downloaded and verified", 6 * 1024**3, piece="cities shard 0")
    # the piece's bytes are counted once, not once moving and again done
    assert lines[-1].startswith("progress: download 1/2 snapshots, 6.0 GiB of 8.0 GiB (75%)")


def test_each_line_carries_its_figures_for_a_machine_reader():
    now = [0.0]
    lines: list[ProgressLine] = []
    clock = lambda: now[0]  # noqa: E731
    progress = Progress("backup", "shards of cities", 2, 0, lines.append, clock=clock, interval=0)
    now[0] = 4.0
    progress.advance("shard 0", 1024)
    now[0] = 8.0
    progress.done("shard 0 in 8s", 2048, piece="shard 0")
    assert lines[0] == "progress: backup 0/2 shards of cities, 1.0 KiB, 256 B/s: shard 0"
    assert lines[1].fields == {
        "operation": "backup", "unit": "shards of cities", "items": 1, "total_items": 2, "bytes": 2048,
        "total_bytes": 0, "bytes_per_second": 256.0, "seconds": 8.0, "eta_seconds": 8.0,
        "label": "shard 0 in 8s",
    }  # fmt: skip
