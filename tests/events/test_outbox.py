"""The bounded per-socket outbox and the transport flow it waits on (no server needed)."""

from __future__ import annotations

import asyncio

from apps.events.transport import Outbox, TransportFlow, prepare_frame


class FakeProtocol:
    """Stands in for daphne's protocol object: accepts one producer, like Twisted."""

    def __init__(self) -> None:
        self.producer = None

    def registerProducer(self, producer, streaming) -> None:  # noqa: N802 - Twisted's name
        assert streaming
        if self.producer is not None:
            raise RuntimeError("already registered")
        self.producer = producer

    def unregisterProducer(self) -> None:  # noqa: N802
        self.producer = None


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 10))


def test_messages_go_out_in_order_and_the_last_event_id_is_tracked():
    async def scenario():
        sent: list[str] = []

        async def send(text: str) -> None:
            sent.append(text)

        outbox = Outbox(send, limit=10)
        outbox.start()
        for n in range(5):
            assert outbox.offer(f"m{n}", n + 100)
        outbox.offer("notice")  # no id: does not move the last id
        await asyncio.sleep(0.01)
        await outbox.stop()
        return sent, outbox.last_id

    sent, last_id = run(scenario())
    assert sent == ["m0", "m1", "m2", "m3", "m4", "notice"]
    assert last_id == 104


def test_a_paused_transport_holds_the_drain_and_a_full_outbox_refuses_live_events():
    async def scenario():
        sent: list[str] = []

        async def send(text: str) -> None:
            sent.append(text)

        protocol = FakeProtocol()
        flow = TransportFlow(protocol)
        outbox = Outbox(send, limit=3, flow=flow)
        outbox.start()
        assert protocol.producer is flow
        protocol.producer.pauseProducing()  # the client stopped reading
        accepted = [outbox.offer(f"e{n}", n) for n in range(5)]
        await asyncio.sleep(0.01)
        held = list(sent)
        reply_fits = outbox.offer("pong", reserve=2)
        protocol.producer.resumeProducing()
        await asyncio.sleep(0.01)
        await outbox.stop()
        return accepted, held, reply_fits, sent, protocol.producer

    accepted, held, reply_fits, sent, producer_after = run(scenario())
    assert accepted == [True, True, True, False, False]
    assert held == []
    assert reply_fits  # replies get a little headroom past the limit
    assert sent == ["e0", "e1", "e2", "pong"]
    assert producer_after is None  # unregistered when the socket goes


def test_put_waits_for_room_instead_of_refusing():
    async def scenario():
        gate = asyncio.Event()
        sent: list[str] = []

        async def send(text: str) -> None:
            await gate.wait()
            sent.append(text)

        outbox = Outbox(send, limit=2)
        outbox.start()
        for n in range(3):  # r0 is in flight (held by the gate), r1 and r2 fill the outbox
            await outbox.put(f"r{n}", n)
            await asyncio.sleep(0)
        fourth = asyncio.create_task(outbox.put("r3", 3))
        await asyncio.sleep(0.01)
        waiting = not fourth.done()
        gate.set()
        await fourth
        await asyncio.sleep(0.01)
        await outbox.stop()
        return waiting, sent

    waiting, sent = run(scenario())
    assert waiting
    assert sent == ["r0", "r1", "r2", "r3"]


def test_flow_is_only_found_on_daphnes_send():
    import functools

    async def plain_send(message):
        return None

    def handle_reply(protocol, message):
        return None

    assert TransportFlow.from_send(plain_send) is None
    assert TransportFlow.from_send(functools.partial(handle_reply, object())) is None
    assert TransportFlow.from_send(functools.partial(handle_reply, FakeProtocol())) is not None


class FakeWebSocketProtocol(FakeProtocol):
    """Daphne's WebSocket protocol as far as prepared frames go: autobahn's state and send."""

    STATE_OPEN = 1
    STATE_CLOSING = 2

    def __init__(self) -> None:
        super().__init__()
        self.state = self.STATE_OPEN
        self.written: list[bytes] = []

    def sendPreparedMessage(self, frame) -> None:  # noqa: N802 - autobahn's name
        self.written.append(frame.payloadHybi)


def test_a_prepared_frame_is_one_unmasked_text_frame_of_the_utf8_payload():
    frame = prepare_frame('{"type":"chat_token","data":"héllo"}')
    payload = '{"type":"chat_token","data":"héllo"}'.encode()
    assert frame.payloadHybi == bytes([0x81, len(payload)]) + payload  # FIN + text, no mask bit


def test_an_idle_open_socket_takes_the_frame_directly_and_a_closing_one_does_not():
    async def scenario():
        sent: list[str] = []

        async def send(text: str) -> None:
            sent.append(text)

        protocol = FakeWebSocketProtocol()
        outbox = Outbox(send, limit=3, flow=TransportFlow(protocol))
        outbox.start()
        frame = prepare_frame('{"id":7}')
        assert outbox.can_send_now()
        assert outbox.send_frame_now(frame, 7)
        protocol.state = protocol.STATE_CLOSING
        assert not outbox.send_frame_now(prepare_frame('{"id":8}'), 8)  # the ASGI send decides
        assert not outbox.send_frame_now(None, 9)  # no autobahn: always the ASGI send
        await outbox.stop()
        return protocol.written, sent, outbox.last_id

    written, sent, last_id = run(scenario())
    assert written == [prepare_frame('{"id":7}').payloadHybi]
    assert sent == []
    assert last_id == 7
