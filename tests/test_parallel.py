import os
import time

from fer.parallel import ordered_imap


def _slow_square(x: int) -> tuple[int, int]:
    time.sleep(0.02)
    return x * x, os.getpid()


def test_ordered_imap_keeps_order_when_this_process_shares_the_work():
    ran_here = []

    def here(x: int) -> tuple[int, int]:
        ran_here.append(x)
        return _slow_square(x)

    results = list(ordered_imap(_slow_square, iter(range(30)), workers=2, ahead=1, here=here))
    assert [square for square, _ in results] == [x * x for x in range(30)]
    by_pid = {pid for _, pid in results}
    assert os.getpid() in by_pid and len(by_pid) == 2  # this process and one worker
    assert ran_here and len(ran_here) < 30


def test_ordered_imap_with_one_worker_runs_here_only():
    ran_here = []

    def here(x: int) -> int:
        ran_here.append(x)
        return -x

    assert list(ordered_imap(abs, iter(range(5)), workers=1, here=here)) == [0, -1, -2, -3, -4]
    assert ran_here == [0, 1, 2, 3, 4]
