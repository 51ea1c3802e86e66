"""The central service: storage, broker link, consumer and admin API in one TaskGroup."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sdnotify
import uvicorn
from pydantic import ValidationError

from broker import topics
from broker.auth import DYNSEC_FILE
from broker.messages import KioskState, encode
from broker.release import public_key
from broker.transport import TlsFiles
from central import backup, logs, rollout, schema
from central.api import health as api_health
from central.api import staff as staff_api
from central.api.app import ADMIN_ACTOR, create_app
from central.api.deps import provide
from central.audit import seal_forever
from central.breaker import Breaker, BreakerPolicy
from central.clock import Clock, SystemClock
from central.console.app import create_console
from central.console.parts import ConsoleParts
from central.console.pulse import Pulse
from central.consumer import Consumer
from central.dynsec import DynsecControl
from central.errors import CentralError, ConfigError
from central.fleet import BrokerAccounts
from central.keys import KeyFile, load_admin_token
from central.mqtt import CentralLink
from central.republish import EVERYTHING, Republish
from central.services.browse import Browse
from central.services.circulation import Circulation
from central.services.enrolment import BrokerAddress
from central.services.fleet_updates import FleetUpdates
from central.services.invitations import MemberInvitations
from central.services.reminders import LinkMaker, Reminders
from central.services.rollout_control import RolloutControl
from central.services.staff import StaffAccounts, StaffData
from central.settings import CentralSettings, load_settings
from central.storage.base import Store
from central.storage.postgres import PostgresStore
from central.storage.reminders import ReminderRows
from central.storage.sqlite import SqliteStore
from central.tokens import TokenSigner
from central.updates import UpdateEngine
from central.web import app as members_app
from central.web import invite_api
from central.web.live import Hub, Tee
from central.web.mail import Mailer
from central.web.store import MembersData

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Deps:
    """What ``run`` may be handed instead of building it (tests inject a clock)."""

    clock: Clock = field(default_factory=SystemClock)
    ready: asyncio.Event | None = None


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the service's TaskGroup owns shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def open_store(settings: CentralSettings) -> SqliteStore | PostgresStore:
    """The configured backend, migrated to the newest schema."""
    store: SqliteStore | PostgresStore
    if settings.database == "postgres":
        if settings.postgres_dsn is None:
            raise ConfigError("database=postgres needs CS_CENTRAL_POSTGRES_DSN")
        store = await PostgresStore(
            settings.postgres_dsn.get_secret_value(), max_size=settings.postgres_pool
        ).open()
    else:
        store = await SqliteStore(settings.sqlite_file).open()
    try:
        await store.migrate()
    except BaseException:
        await store.close()
        raise
    return store


async def run(settings: CentralSettings, deps: Deps | None = None) -> None:  # noqa: PLR0915 - assembles all of central
    """Run one central instance until cancelled."""
    deps = deps or Deps()
    # systemd's notify protocol; every call is a no-op when systemd did not start us.
    systemd = sdnotify.SystemdNotifier()
    keys = KeyFile(
        settings.keys_path,
        create=settings.create_keys,
        grace=timedelta(seconds=settings.key_grace_s),
    )
    token = (
        settings.admin_token.get_secret_value()
        if settings.admin_token
        else load_admin_token(settings.data_dir / "admin.token", create=settings.create_keys)
    )
    signer = TokenSigner(keys)
    data_lock = backup.hold_data(settings)  # restore refuses while this is held
    store = await open_store(settings)
    consumer: Consumer | None = None
    link: CentralLink | None = None
    accounts = BrokerAccounts(
        store,
        control=settings.broker_control,
        seed=settings.broker_auth_dir / DYNSEC_FILE if settings.broker_auth_dir else None,
        now=deps.clock.now,
    )
    try:
        # The broker must know this instance's own user before it tries to connect.
        await accounts.ensure_central(
            settings.mqtt_username,
            settings.mqtt_password.get_secret_value() if settings.mqtt_password else None,
            deps.clock.now(),
        )
        link = CentralLink(
            settings.instance_id,
            settings.mqtt_host,
            settings.mqtt_port,
            username=settings.mqtt_username,
            password=settings.mqtt_password.get_secret_value() if settings.mqtt_password else None,
            session_expiry_s=settings.session_expiry_s,
            keepalive_s=settings.mqtt_keepalive_s,
            tls=TlsFiles(settings.mqtt_tls_ca) if settings.mqtt_tls_ca else None,
            control_responses=accounts.managed,
        )
        control = DynsecControl(link.publish, link.connected)
        link.on_control = control.feed
        accounts.attach(control)
        # The members' app's live catalogue hears every availability change the consumer sends.
        hub = Hub()
        consumer = Consumer(
            store,
            signer,
            deps.clock,
            Tee(link, hub),
            batch_max=settings.batch_max,
            limits=settings.limits(),
            abuse_policy=settings.abuse(),
            kiosk_backlog=settings.kiosk_backlog,
            kiosk_share=settings.kiosk_share,
        )
        link.on_inbound = consumer.submit
        if accounts.managed:
            consumer.on_blocked = _shut_out_at_the_broker(accounts)
        mailer = (
            Mailer(settings.smtp_host, settings.smtp_port, settings.mail_from)
            if settings.members_app
            else None
        )
        # Reminders link to the members' app (loans, unsubscribe): they go when it is on.
        reminder_rows = ReminderRows(store, store.dialect)
        reminders = Reminders(
            reminder_rows,
            deps.clock,
            mailer,
            LinkMaker(settings.members_origin),
            metrics=consumer.metrics,
        )
        breaker = Breaker(
            store, deps.clock, link, consumer.metrics, BreakerPolicy.from_settings(settings)
        )
        # Staff invitations go by e-mail whether or not the members' app is on.
        staff = StaffAccounts(
            StaffData(store),
            store,
            deps.clock,
            Mailer(settings.smtp_host, settings.smtp_port, settings.mail_from),
            settings.console_url,
            ADMIN_ACTOR,
        )
        app = create_app(
            store,
            signer,
            deps.clock,
            link,
            consumer,
            admin_token=token,
            pass_ttl_s=settings.pass_ttl_s,
            accounts=accounts,
            broker_address=BrokerAddress(
                settings.broker_public_host,
                settings.broker_public_port,
                settings.broker_ca_file.read_text() if settings.broker_ca_file else None,
            ),
            routers=[
                invite_api.router(
                    MemberInvitations(
                        MembersData(store),
                        store,
                        deps.clock,
                        mailer,
                        settings.members_origin,
                        ADMIN_ACTOR,
                    ),
                    MembersData(store),
                    deps.clock,
                ),
                staff_api.router(staff),
                api_health.router(
                    store,
                    link.connected.is_set,
                    lambda: consumer.depth,
                    max_queue=settings.ready_max_queue,
                    db_timeout_s=settings.ready_db_timeout_s,
                    stalled_s=consumer.stalled_s,
                    max_stall_s=settings.ready_max_stall_s,
                ),
            ],
            keys=keys,
            rollout_control=RolloutControl(store, deps.clock, link, consumer.metrics, breaker),
            fleet_updates=FleetUpdates(
                store, deps.clock, [public_key(k) for k in settings.release_keys]
            ),
            reminder_service=reminders,
        )
        pulse = _pulse(consumer)
        # The paged reads the console shows, on the admin API too (one copy of each query).
        provide(app, Browse(store))
        app.mount(
            "/staff",
            create_console(
                ConsoleParts(
                    store,
                    store,
                    app.state.services,
                    consumer,
                    hub,
                    pulse,
                    deps.clock,
                    staff,
                    mailer,
                    settings.members_origin,
                ),
                origin=settings.console_url,
                # Plain HTTP only for a development origin (as the members' app).
                secure_cookies=settings.console_url.startswith("https://"),
            ),
        )
        updates = UpdateEngine(
            store,
            _enrolled(store),
            deps.clock,
            link,
            consumer.presence,
            artifact_url=lambda version: f"{settings.download_base}/releases/{version}/artifact",
            resend_s=settings.update_resend_s,
        )
        server = _QuietServer(
            uvicorn.Config(
                app,
                host=settings.admin_host,
                port=settings.admin_port,
                log_config=None,
                lifespan="off",
                access_log=False,
                ssl_certfile=settings.admin_tls_cert,
                ssl_keyfile=settings.admin_tls_key,
            )
        )
        members = _members_server(
            settings,
            store,
            signer,
            deps.clock,
            hub,
            mailer,
            reminder_rows,
            # Members act as themselves; what they change goes to kiosks and the catalogue.
            Circulation(store, deps.clock, Tee(link, hub), "member"),
        )
        async with asyncio.TaskGroup() as group:
            if members is not None:
                group.create_task(_serve_api(members), name="members-app")

            # Retained state is what a rebooted kiosk sees first: after a (re)connect,
            # publish again what the broker may have lost (central/republish.py says what).
            def rebroadcast(scope: Republish) -> None:
                if not scope.nothing:
                    group.create_task(
                        _broadcast_state(store, link, deps.clock, scope), name="broadcast"
                    )

            link.on_connect = rebroadcast
            group.create_task(link.run(), name="mqtt")
            group.create_task(consumer.run(), name="consumer")
            group.create_task(_serve_api(server), name="admin-api")
            group.create_task(_announce_ready(server, link, deps.ready, systemd), name="ready")
            group.create_task(_watchdog(consumer, systemd), name="watchdog")
            if accounts.managed:
                group.create_task(accounts.run(), name="broker-accounts")
            group.create_task(breaker.run(settings.breaker_every_s), name="breaker")
            sweeper = Circulation(store, deps.clock, link, "system")
            group.create_task(sweeper.run(settings.hold_sweep_every_s), name="hold-sweep")
            group.create_task(updates.run(settings.update_every_s), name="updates")
            group.create_task(seal_forever(store), name="audit-sealer")
            group.create_task(pulse.run(), name="console-pulse")
            if mailer is not None:
                group.create_task(reminders.run(settings.reminder_every_s), name="reminders")
    finally:
        systemd.notify("STOPPING=1")
        if link is not None:
            await link.close()
        await store.close()
        if data_lock is not None:
            data_lock.close()


def _pulse(consumer: Consumer) -> Pulse:
    """The console's charts, sampled from the consumer's own metrics and presence."""
    metrics = consumer.metrics
    return Pulse(
        metrics.success,
        metrics.failed,
        metrics.validation_latency,
        lambda: sum(1 for s in consumer.presence.values() if s.state is KioskState.ONLINE),
    )


def _shut_out_at_the_broker(accounts: BrokerAccounts) -> Callable[[str, datetime], None]:
    """A flooding kiosk's block, applied at the broker too: its flood stops at the source."""
    pending: set[asyncio.Task[bool]] = set()

    def shut_out(kiosk_id: str, until: datetime) -> None:
        # Kept until done: the loop holds only a weak reference to a task.
        task = asyncio.create_task(accounts.quarantine(kiosk_id, until))
        pending.add(task)
        task.add_done_callback(pending.discard)

    return shut_out


def _enrolled(store: SqliteStore | PostgresStore) -> Callable[[], Awaitable[list[str]]]:
    """The kiosks a rollout may reach: enrolled and not retired."""

    async def kiosks() -> list[str]:
        return [r.config.kiosk_id for r in await store.kiosk_records() if not r.retired]

    return kiosks


def _members_server(
    settings: CentralSettings,
    store: SqliteStore | PostgresStore,
    signer: TokenSigner,
    clock: Clock,
    hub: Hub,
    mailer: Mailer | None,
    reminder_rows: ReminderRows,
    circulation: Circulation | None = None,
) -> _QuietServer | None:
    """The members' app on its own port (HTTPS when given a certificate), if switched on."""
    if not settings.members_app:
        return None
    app = members_app.create_app(
        store,
        signer,
        clock,
        hub,
        origin=settings.members_origin,
        mailer=mailer,
        circulation=circulation,
        # Plain HTTP only for a development origin on localhost (a secure context anyway).
        secure_cookies=settings.members_origin.startswith("https://"),
        reminder_rows=reminder_rows,
    )
    return _QuietServer(
        uvicorn.Config(
            app,
            host=settings.members_host,
            port=settings.members_port,
            log_config=None,
            lifespan="off",
            access_log=False,
            ssl_certfile=settings.members_tls_cert,
            ssl_keyfile=settings.members_tls_key,
            # Live catalogue streams never end by themselves: do not wait on them to stop.
            timeout_graceful_shutdown=1,
        )
    )


async def _serve_api(server: uvicorn.Server) -> None:
    try:
        await server.serve()
    except asyncio.CancelledError:
        # Cancelled mid-serve, uvicorn never reaches its own shutdown and its listening
        # socket stays open; close it so the port is free for the next start.
        with contextlib.suppress(Exception):
            await server.shutdown()
        raise


async def _broadcast_state(
    store: Store, link: CentralLink, clock: Clock, scope: Republish = EVERYTHING
) -> None:
    # Retained state is what a rebooted kiosk sees first; publish what ``scope`` says the
    # broker may lack (all of it at start, so a wiped broker is whole again). A checkout
    # decided while the snapshot is read publishes its newer copy first; the snapshot's
    # older copy of that topic is then skipped.
    mark = link.mark()
    for config in await rollout.kiosk_configs(store):
        topic = topics.config(config.kiosk_id)
        if scope.covers(topic) and not link.retained_since(topic, mark):
            link.publish(topic, encode(config), retain=True)
    for availability in await store.all_availability(clock.now()):
        topic = topics.availability(availability.shelf_id, availability.item_id)
        if scope.covers(topic) and not link.retained_since(topic, mark):
            link.publish(topic, encode(availability), retain=True)


# Fed while the consumer's heartbeat is younger than this; WatchdogSec is 30 s.
_STALE_AFTER_S = 10.0


async def _watchdog(consumer: Consumer, systemd: sdnotify.SystemdNotifier) -> None:
    while True:
        await asyncio.sleep(2.0)
        if time.monotonic() - consumer.heartbeat < _STALE_AFTER_S:
            systemd.notify("WATCHDOG=1")
        else:
            log.error(
                "consumer silent for %.0f s; leaving the watchdog unfed",
                time.monotonic() - consumer.heartbeat,
            )


async def _announce_ready(
    server: uvicorn.Server,
    link: CentralLink,
    ready: asyncio.Event | None,
    systemd: sdnotify.SystemdNotifier,
) -> None:
    await link.connected.wait()
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.02)
    systemd.notify("READY=1")
    log.info("central ready")
    if ready is not None:
        ready.set()


def main(argv: Sequence[str] | None = None) -> int:
    """``cs-central``: run central, or check its configuration."""
    parser = argparse.ArgumentParser(prog="cs-central", description=__doc__)
    parser.add_argument(
        "--validate-config", action="store_true", help="load and check the settings, then exit"
    )
    parser.add_argument("--log-level", default="INFO")
    commands = parser.add_subparsers(dest="command", metavar="{backup,restore,migrate}")
    backup.register(commands)
    schema.register(commands)
    args = parser.parse_args(argv)
    logs.setup(args.log_level, service="central")
    try:
        settings = load_settings()
    except ValidationError as exc:
        print(f"invalid central configuration:\n{exc}", file=sys.stderr)  # noqa: T201
        return 2
    if args.command == "migrate":
        return schema.command(args, settings)
    if args.command:
        return backup.command(args, settings)
    if args.validate_config:
        print(settings.model_dump_json(indent=2))  # noqa: T201 - SecretStr prints masked
        return 0
    return _serve(settings)


def _serve(settings: CentralSettings) -> int:
    async def runner() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await run(settings)

    try:
        asyncio.run(runner())
    except CentralError as exc:
        log.error("central stopped: %s", exc)  # noqa: TRY400 - a fault we explain, no trace
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
