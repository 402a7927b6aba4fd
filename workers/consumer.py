"""The outbound delivery consumer (`zixly outbound`, or `python -m workers.consumer`).

One long-polling thread per provider queue receives messages; each message group of a batch goes to one
worker thread, which handles its messages one after another (SQS FIFO returns no more of a group while one
is in flight, so a record's writes stay in order across consumers). A message is deleted only after its
outcome is recorded; a message kept for later is hidden for as long as core.outbound.delivery asks, and the rest of
its group with it. A heartbeat keeps every message in hand invisible, so a slow call is never handed to a
second consumer; a consumer that dies simply stops the heartbeat and SQS hands its messages out again.
Dead-letter queues are drained into `dead` deliveries. SIGTERM: stop receiving, finish the deliveries in
hand, hand back the ones not started.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from prometheus_client import start_http_server

from core import bootstrap
from core.outbound import delivery, queues
from core.platform import aws, logs
from core.platform.config import Settings
from core.platform.metrics import QueueDepthCollector, registry_for_scrape

log = logging.getLogger("zixly.consumer")
MAX_VISIBILITY = 43_200  # SQS' limit (12 hours)
FOLLOW_UP_ROOM = 2  # messages a follow-up poll may take beyond the queue's capacity
DEAD_LETTER_HOLD = 60  # a dead letter that could not be recorded is seen again after this long


@dataclass(frozen=True)
class Config:
    threads: int = 4
    wait_seconds: int = aws.LONG_POLL_SECONDS
    retry_base: float = 5.0  # a transient failure hides the message base * 2^(receives - 1) seconds …
    retry_max: float = 900.0  # … at most this long
    hold_max: float = 10.0  # the longest wait for a token with the message in hand; longer ones go back to SQS
    sweep_seconds: float = 30.0  # how often dead-letter queues are drained
    heartbeat_seconds: float = 1.0
    follow_up_seconds: int = 2  # the short long poll that follows a freed group (see Consumer._freed)
    providers: tuple[str, ...] = aws.OUTBOUND_PROVIDERS
    metrics_port: int | None = None


@dataclass
class Queue:
    provider: str
    url: str
    dead_url: str | None
    visibility: int
    max_receive: int | None


@dataclass
class Lease:
    """A message in hand, kept invisible by the heartbeat until it is deleted or handed back."""

    queue: Queue
    message: dict
    expires: float = field(default=0.0)
    released: bool = False  # deleted or handed back: the heartbeat must not touch it any more
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def receipt(self) -> str:
        return self.message["ReceiptHandle"]

    @property
    def receives(self) -> int:
        return int(self.message.get("Attributes", {}).get("ApproximateReceiveCount", 1))

    @property
    def group(self) -> str:
        return self.message.get("Attributes", {}).get("MessageGroupId", "")


class Consumer:
    def __init__(self, config: Config = Config()):
        self.config = config
        self.sqs = queues.sqs_client()
        self.stopping = threading.Event()
        self._done = threading.Event()
        self._pool = ThreadPoolExecutor(config.threads, thread_name_prefix="deliver")
        self._leases: dict[str, Lease] = {}
        self._room = threading.Condition()
        # messages in hand per queue: each poller stops receiving at its own limit, so one busy queue neither
        # starves the others nor keeps more of its groups locked than the threads will soon get to
        self._in_hand: dict[str, int] = {}
        self._capacity = max(10, config.threads * 2)
        self._pollers: list[threading.Thread] = []
        self._followers = ThreadPoolExecutor(2, thread_name_prefix="follow")  # see _freed
        self._follow_pending: dict[str, bool] = {}
        self._freed_at: dict[str, float] = {}  # per queue: when a group was last freed
        self._receive_began: dict[str, float] = {}  # per queue: when the latest receive call began
        self._helpers: list[threading.Thread] = []
        self.queues: list[Queue] = []

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def start(self) -> Consumer:
        self.queues = [self._describe(provider) for provider in self.config.providers]
        for queue in self.queues:
            self._pollers.append(self._thread(f"poll-{queue.provider}", self._poll, queue))
        self._helpers = [self._thread("heartbeat", self._heartbeat), self._thread("dead-letters", self._sweep)]
        log.info("outbound consumer started: %d queue(s), %d thread(s)", len(self.queues), self.config.threads)
        return self

    def stop(self) -> None:
        """Stop receiving; deliveries in hand finish, messages not started are handed back at once."""
        self.stopping.set()
        with self._room:
            self._room.notify_all()
        for thread in self._pollers:
            thread.join(self.config.wait_seconds + 10)
        self._followers.shutdown(wait=True)
        self._pool.shutdown(wait=True)
        self._done.set()
        for thread in self._helpers:
            thread.join(10)
        log.info("outbound consumer stopped")

    def _thread(self, name, target, *args) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        return thread

    def _describe(self, provider: str) -> Queue:
        url = queues.queue_url(provider)
        attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout", "RedrivePolicy"])
        attrs = attrs.get("Attributes", {})
        redrive = json.loads(attrs["RedrivePolicy"]) if attrs.get("RedrivePolicy") else None
        dead_url = queues.queue_url(provider, dead=True) if redrive else None
        return Queue(provider, url, dead_url, int(attrs.get("VisibilityTimeout", 30)),
                     int(redrive["maxReceiveCount"]) if redrive else None)

    # -- receiving ----------------------------------------------------------------------------------------------
    def _poll(self, queue: Queue) -> None:
        while not self.stopping.is_set():
            self._receive(queue, self.config.wait_seconds, block=True)

    def _freed(self, queue: Queue) -> None:
        """A message group of the queue is free again: make sure a receive begins after this moment.

        A group's next write is often sent just after its previous one is done (a workflow that updates a deal
        and then notes on it). A long poll already in progress may have begun while the group was locked: real
        SQS answers it as soon as the next message arrives, but moto keeps the group locked for that whole poll
        (it snapshots the locked groups when a poll begins), so the write would wait up to `wait_seconds`. A
        short poll that begins after the group was freed sees it at once on both. Frees coalesce: while a
        follow-up is submitted but not yet begun, it serves every free that comes before it begins, and it is
        skipped when some receive of the queue began after the last free (on a busy queue the main poll returns
        and begins again all the time). On real SQS it costs at most one receive per free, none while idle.
        """
        with self._room:
            self._freed_at[queue.url] = time.monotonic()
            if self._follow_pending.get(queue.url) or self.stopping.is_set():
                return
            self._follow_pending[queue.url] = True
        try:
            self._followers.submit(self._follow, queue)
        except RuntimeError:  # shutting down
            with self._room:
                self._follow_pending[queue.url] = False

    def _follow(self, queue: Queue) -> None:
        with self._room:
            self._follow_pending[queue.url] = False  # from here on, a new free needs a new follow-up
            # a receive begun since the last free already sees the group (busy queues: the main poll is short)
            fresh = self._receive_began.get(queue.url, 0.0) > self._freed_at.get(queue.url, 0.0)
        if not fresh and not self.stopping.is_set():
            # its own room: the main poll has usually reserved the queue's whole capacity for its batch
            self._receive(queue, self.config.follow_up_seconds, block=False, spare=FOLLOW_UP_ROOM)

    def _receive(self, queue: Queue, wait: int, *, block: bool, spare: int = 0) -> int:
        room = self._reserve(queue, block, spare)
        if not room:
            return 0
        with self._room:
            self._receive_began[queue.url] = time.monotonic()
        try:
            messages = self.sqs.receive_message(
                QueueUrl=queue.url, MaxNumberOfMessages=room, WaitTimeSeconds=wait,
                AttributeNames=["ApproximateReceiveCount", "MessageGroupId"]).get("Messages", [])
        except Exception as exc:
            self._unreserve(queue, room)
            log.warning("receive from %s failed: %s", queue.provider, exc)
            self.stopping.wait(2)
            return 0
        self._unreserve(queue, room - len(messages))
        leases = [self._take(queue, m) for m in messages]
        for group in _groups(leases):
            self._pool.submit(self._run_group, group)
        return len(messages)

    def _reserve(self, queue: Queue, block: bool = True, spare: int = 0) -> int:
        """Room for a receive: the queue's messages in hand stay within capacity (+ `spare` for follow-ups)."""
        limit = self._capacity + spare
        with self._room:
            while block and self._in_hand.get(queue.url, 0) >= limit and not self.stopping.is_set():
                self._room.wait(1)
            if self.stopping.is_set() or self._in_hand.get(queue.url, 0) >= limit:
                return 0
            room = min(10, limit - self._in_hand.get(queue.url, 0))
            self._in_hand[queue.url] = self._in_hand.get(queue.url, 0) + room
            return room

    def _unreserve(self, queue: Queue, count: int) -> None:
        with self._room:
            self._in_hand[queue.url] -= count
            self._room.notify_all()

    def _take(self, queue: Queue, message: dict) -> Lease:
        lease = Lease(queue, message, time.monotonic() + queue.visibility)
        with self._room:
            self._leases[lease.receipt] = lease
        return lease

    def _let_go(self, lease: Lease) -> None:
        with self._room:
            if self._leases.pop(lease.receipt, None) is not None:
                self._in_hand[lease.queue.url] -= 1
                self._room.notify_all()

    # -- handling -----------------------------------------------------------------------------------------------
    def _run_group(self, leases: list[Lease]) -> None:
        try:
            self._deliver_in_order(leases)
        except Exception:  # never lose track of a message: whatever is still in hand goes back to SQS
            log.exception("a %s message group failed", leases[0].queue.provider)
            self._hand_back([lease for lease in leases if lease.receipt in self._leases], self.config.retry_base)

    def _deliver_in_order(self, leases: list[Lease]) -> None:
        for i, lease in enumerate(leases):
            if self.stopping.is_set():  # not started: back to SQS now, in order, for another consumer
                self._hand_back(leases[i:], 0)
                return
            try:
                outcome = delivery.deliver(lease.message["Body"], hold=self._holder(),
                                           in_flight=lease.queue.visibility)
            except Exception as exc:  # the database or Redis is away: SQS brings the message back
                log.warning("delivery of a %s message failed: %s", lease.queue.provider, exc)
                outcome = delivery.Outcome(False, "retried", detail=str(exc))
            if outcome.delete:
                self._delete(lease)
                if lease is leases[-1]:  # the group is free again: its next write may be on its way
                    self._freed(lease.queue)
                continue
            # kept: hidden for a while, and the group with it (SQS returns none of a group while one of its
            # messages is in flight); the rest go back visible at once, to come after it. (Hiding them as long
            # would be as safe on SQS, but moto then hands out the second first.)
            self._hand_back([lease], self._delay(lease, outcome))
            self._hand_back(leases[i + 1:], 0)
            return

    def _holder(self):
        def hold(seconds: float) -> bool:
            if seconds > self.config.hold_max or self.stopping.is_set():
                return False
            return not self.stopping.wait(seconds)
        return hold

    def _delay(self, lease: Lease, outcome: delivery.Outcome) -> float:
        if outcome.status == "retried" and lease.queue.max_receive and lease.receives >= lease.queue.max_receive:
            return 0  # that was the last attempt: let SQS move it to the dead-letter queue now
        if outcome.delay is not None:
            return outcome.delay
        return min(self.config.retry_base * 2 ** (lease.receives - 1), self.config.retry_max)

    def _delete(self, lease: Lease) -> None:
        with lease.lock:  # not while the heartbeat is extending it
            lease.released = True
            try:
                self.sqs.delete_message(QueueUrl=lease.queue.url, ReceiptHandle=lease.receipt)
            except Exception as exc:  # it comes back, finds its delivery recorded, and is deleted then
                log.warning("delete from %s failed: %s", lease.queue.provider, exc)
        self._let_go(lease)

    def _hand_back(self, leases: list[Lease], seconds: float) -> None:
        timeout = min(MAX_VISIBILITY, max(0, math.ceil(seconds)))
        for lease in leases:
            with lease.lock:  # a late heartbeat must not hide it again (and put it behind the next one)
                lease.released = True
                try:
                    self.sqs.change_message_visibility(QueueUrl=lease.queue.url, ReceiptHandle=lease.receipt,
                                                       VisibilityTimeout=timeout)
                except Exception as exc:  # then it comes back when its current visibility ends
                    log.warning("hand-back to %s failed: %s", lease.queue.provider, exc)
            self._let_go(lease)

    # -- keeping messages in hand invisible ---------------------------------------------------------------------
    def _heartbeat(self) -> None:
        while not self._done.wait(self.config.heartbeat_seconds):
            now = time.monotonic()
            with self._room:
                due = [lease for lease in self._leases.values() if lease.expires - now
                       < max(lease.queue.visibility / 2, self.config.heartbeat_seconds + 1)]
            for lease in due:
                with lease.lock:
                    if lease.released:
                        continue
                    try:
                        self.sqs.change_message_visibility(QueueUrl=lease.queue.url, ReceiptHandle=lease.receipt,
                                                           VisibilityTimeout=lease.queue.visibility)
                        lease.expires = now + lease.queue.visibility
                    except Exception as exc:  # SQS is away: the message may go to another consumer
                        log.warning("keeping a %s message invisible failed: %s", lease.queue.provider, exc)

    # -- dead letters -------------------------------------------------------------------------------------------
    def _sweep(self) -> None:
        while not self._done.wait(self.config.sweep_seconds if self.queues else 1):
            for queue in self.queues:
                if queue.dead_url:
                    try:
                        self.sweep_dead_letters(queue)
                    except Exception as exc:
                        log.warning("dead-letter sweep of %s failed: %s", queue.provider, exc)

    def sweep_dead_letters(self, queue: Queue, batches: int = 100) -> int:
        """Record each message of the queue's dead-letter queue as a dead delivery, then delete it."""
        buried = 0
        for _ in range(batches):
            messages = self.sqs.receive_message(QueueUrl=queue.dead_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                                VisibilityTimeout=DEAD_LETTER_HOLD).get("Messages", [])
            for message in messages:
                outcome = delivery.bury(message["Body"])
                if outcome.delete:
                    self.sqs.delete_message(QueueUrl=queue.dead_url, ReceiptHandle=message["ReceiptHandle"])
                    buried += outcome.status == "dead"
            if not messages:
                break
        return buried


def _groups(leases: list[Lease]) -> list[list[Lease]]:
    """A batch split by message group, each group in the order SQS returned it."""
    groups: dict[str, list[Lease]] = {}
    for lease in leases:
        groups.setdefault(lease.group, []).append(lease)
    return list(groups.values())


def depth_collector(consumer: Consumer):
    """The depth of every queue the consumer reads, and of their dead-letter queues, sampled when scraped."""
    named = [(queues.queue_name(q.provider), q.url) for q in consumer.queues]
    named += [(queues.queue_name(q.provider, dead=True), q.dead_url) for q in consumer.queues if q.dead_url]
    return QueueDepthCollector([], sqs_client=consumer.sqs, sqs_queues=named)


def _serve_metrics(consumer: Consumer, port: int) -> None:
    start_http_server(port, registry=registry_for_scrape([depth_collector(consumer)]))
    log.info("outbound consumer metrics on :%s", port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="zixly outbound")
    parser.add_argument("--threads", type=int, default=Config.threads)
    parser.add_argument("--wait-seconds", type=int, default=Config.wait_seconds)
    parser.add_argument("--retry-base", type=float, default=Config.retry_base)
    parser.add_argument("--sweep-seconds", type=float, default=Config.sweep_seconds)
    parser.add_argument("--follow-up-seconds", type=int, default=Config.follow_up_seconds)
    parser.add_argument("--providers", default=",".join(Config.providers))
    parser.add_argument("--metrics-port", type=int, default=None)
    args = parser.parse_args(argv)

    settings = bootstrap.init(Settings.from_env())
    logs.configure(settings.log_level, settings.log_format)
    config = Config(threads=args.threads, wait_seconds=args.wait_seconds, retry_base=args.retry_base,
                    sweep_seconds=args.sweep_seconds, follow_up_seconds=args.follow_up_seconds,
                    providers=tuple(p for p in args.providers.split(",") if p),
                    metrics_port=args.metrics_port or settings.worker_metrics_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        consumer = Consumer(config).start()
    except Exception as exc:  # a missing queue, usually: say what to do instead of a traceback
        log.error("cannot start the outbound consumer: %s (have the queues been created? `zixly aws bootstrap`)",
                  exc)
        raise SystemExit(2) from None
    if config.metrics_port:
        _serve_metrics(consumer, config.metrics_port)
    while not stop.wait(1):
        pass
    consumer.stop()


if __name__ == "__main__":
    main()
