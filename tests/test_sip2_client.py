"""The SIP2 client against the test library system over real TCP (and TLS) on 127.0.0.1:
every request, the three character sets, and each fault the server can be told to make."""

from __future__ import annotations

import socket
import ssl
from datetime import datetime, timedelta

import pytest

from sync.sip2 import codec
from sync.sip2.client import Sip2Client
from sync.sip2.errors import (
    BadCharset,
    ConnectionLost,
    LoginRefused,
    MissingChecksum,
    Sip2LinkError,
    Sip2Timeout,
    TooManyResends,
)
from sync.sip2.framing import CRLF
from sync.sip2.messages import (
    Checkout,
    ItemInformationRequest,
    Login,
    PatronStatusRequest,
)
from tests.sip2_server import INSTITUTION, Ils, Item, Patron, Sip2TestServer, make_tls

pytestmark = pytest.mark.timeout(60)


def latin_ils() -> Ils:
    ils = Ils()
    ils.add_patron(Patron("P001", "Müller, Anna", "1234", email="anna@example.org"))
    ils.add_patron(Patron("P002", "Søren Ærø", "9999"))
    ils.add_item(Item("B1", "Die Blechtrommel"))
    ils.add_item(Item("B2", "L'Étranger"))
    ils.add_item(Item("B3", "Le Petit Prince", holds=["P002"]))
    return ils


def chinese_ils() -> Ils:
    ils = Ils()
    ils.add_patron(Patron("P100", "王小明", "1234"))
    ils.add_patron(Patron("P101", "䶮𠀀", "5678"))
    ils.add_item(Item("C1", "红楼梦", location="总馆"))
    ils.add_item(Item("C2", "亅部首考 𠀀", location="分馆"))
    return ils


@pytest.fixture
def serve():
    servers = []

    def start(ils: Ils | None = None, **kwargs) -> Sip2TestServer:
        server = Sip2TestServer(ils or latin_ils(), **kwargs).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


@pytest.fixture
def clients():
    made = []

    def make(server: Sip2TestServer, **kwargs) -> Sip2Client:
        options = {"institution_id": INSTITUTION, "login_user_id": "kiosk",
                   "login_password": "secret", "location_code": "Kiosk 1",
                   "terminal_password": "tpw", "charset": server.charset, "timeout": 3.0}
        options.update(kwargs)
        client = Sip2Client("127.0.0.1", server.port, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def codes(server: Sip2TestServer) -> list[str]:
    return [raw[:2].decode() for raw in server.received]


# -- the conversation ---------------------------------------------------------------------

def test_first_call_logs_in_then_asks(serve, clients):
    server = serve()
    client = clients(server)
    status = client.sc_status()
    assert status.online_status and status.checkout_ok
    assert {"11", "09", "29", "63", "17"} <= status.supported_messages
    assert codes(server) == ["93", "99"]
    login = server.decoded()[0]
    assert isinstance(login, Login) and login.location_code == "Kiosk 1"
    assert client.connected and "127.0.0.1" in repr(client)


def test_a_refused_login_is_an_error_and_leaves_the_client_closed(serve, clients):
    client = clients(serve(), login_password="wrong")
    with pytest.raises(LoginRefused, match="'kiosk'"):
        client.sc_status()
    assert not client.connected


def test_patron_status_reports_pin_and_name_in_cp850(serve, clients):
    server = serve()
    client = clients(server)
    good = client.patron_status("P001", "1234")
    assert (good.name, good.valid, good.pin_ok, good.may_borrow) == (
        "Müller, Anna", True, True, True)
    bad = client.patron_status("P001", "0000")
    assert bad.pin_ok is False and not bad.may_borrow
    unknown = client.patron_status("P404")
    assert unknown.valid is False and "charge_privileges_denied" in unknown.blocks
    assert unknown.screen_message == "Unknown patron"
    request = server.decoded()[1]
    assert isinstance(request, PatronStatusRequest)
    assert (request.terminal_password, request.patron_password) == ("tpw", "1234")


def test_a_loan_from_checkout_to_checkin(serve, clients):
    server = serve()
    client = clients(server)
    before = datetime.now()
    loan = client.checkout("P001", "B1", pin="1234")
    assert loan.ok and not loan.renewal and not loan.retried
    assert loan.title == "Die Blechtrommel" and loan.item_id == "B1"
    assert before + timedelta(days=13) < loan.due_date < before + timedelta(days=15)
    item = client.item_information("B1")
    assert (item.circulation_status, item.status_name, item.due_date) == (
        "04", "charged", loan.due_date)
    info = client.patron_information("P001", "1234", summary="charged")
    assert info.charged == ("B1 Die Blechtrommel",)
    assert info.counts["charged"] == 1 and info.email == "anna@example.org"
    renewed = client.renew("P001", "B1", pin="1234")
    assert renewed.ok and renewed.renewal
    returned = client.checkin("B1")
    assert returned.ok and returned.title == "Die Blechtrommel" and returned.patron_id == "P001"
    assert client.item_information("B1").available
    checkin = server.decoded()[-2]
    assert checkin.current_location == "Kiosk 1" and checkin.return_date is not None


def test_a_refused_checkout_says_why(serve, clients):
    client = clients(serve())
    loan = client.checkout("P001", "B3")
    assert not loan.ok and loan.due_date is None
    assert loan.screen_message == "Item is on hold for another patron"
    assert client.checkin("B3").alert  # holds waiting: the kiosk must not shelve it


def test_block_patron_and_end_session(serve, clients):
    server = serve()
    client = clients(server)
    blocked = client.block_patron("P002", "Card left in kiosk", card_retained=True)
    assert "charge_privileges_denied" in blocked.blocks and not blocked.may_borrow
    assert server.ils.patrons["P002"].blocked
    assert not client.checkout("P002", "B2").ok
    ended = client.end_session("P002")
    assert ended.ended and ended.screen_message == "Goodbye"


def test_sequence_numbers_run_0_to_9_and_wrap(serve, clients):
    server = serve()
    client = clients(server)
    for _ in range(11):
        client.item_information("B1")
    numbers = [codec.decode(raw).sequence for raw in server.received]
    assert numbers == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]  # login first


@pytest.mark.parametrize("charset", ["utf-8", "gb18030"])
def test_chinese_names_and_titles(serve, clients, charset):
    server = serve(chinese_ils(), charset=charset)
    client = clients(server, location_code="自助借还机")
    assert client.patron_status("P101", "5678").name == "䶮𠀀"
    loan = client.checkout("P100", "C2", pin="1234")
    assert loan.ok and loan.title == "亅部首考 𠀀"
    item = client.item_information("C1")
    assert (item.title, item.permanent_location) == ("红楼梦", "总馆")
    assert server.decoded()[0].location_code == "自助借还机"


def test_chinese_text_on_a_cp850_connection_is_refused_before_sending(serve, clients):
    server = serve()
    client = clients(server)
    with pytest.raises(BadCharset, match="cannot be written in cp850"):
        client.checkout("王小明", "B1")
    assert codes(server) == ["93"]


# -- faults -------------------------------------------------------------------------------

def test_one_bad_checksum_is_answered_with_a_resend_request(serve, clients):
    server = serve()
    client = clients(server)
    client.sc_status()
    server.faults.bad_checksum = 1
    assert client.item_information("B2").title == "L'Étranger"
    assert server.received[-1] == b"97AZFEF5"
    assert codes(server) == ["93", "99", "17", "97"]


def test_a_damaged_az_marker_is_not_taken_for_a_message_without_checksum(serve, clients):
    server = serve()
    client = clients(server)
    client.sc_status()  # the library system has shown it sends checksums
    server.faults.damaged_marker = 1
    assert client.item_information("B1").title == "Die Blechtrommel"
    assert codes(server)[-2:] == ["17", "97"]


def test_a_lenient_client_accepts_a_damaged_marker_as_no_checksum(serve, clients):
    server = serve()
    client = clients(server, require_checksum=False)
    client.sc_status()
    server.faults.damaged_marker = 1
    item = client.item_information("B1")
    assert item.reply.extra  # the damaged suffix is read as an unknown field
    assert codes(server)[-1] == "17"


def test_bad_checksums_beyond_the_limit_give_up(serve, clients):
    server = serve()
    client = clients(server, max_resends=2)
    client.sc_status()
    server.faults.bad_checksum = 5
    with pytest.raises(TooManyResends, match="after 2 resends"):
        client.item_information("B1")
    assert codes(server)[2:] == ["17", "97", "97"]


def test_a_resend_request_from_the_server_repeats_the_same_bytes(serve, clients):
    server = serve()
    client = clients(server)
    client.sc_status()
    server.faults.ask_resend = 2
    assert client.patron_status("P001", "1234").pin_ok
    assert codes(server)[2:] == ["23", "23", "23"]
    assert server.received[2] == server.received[3] == server.received[4]


def test_endless_resend_requests_give_up(serve, clients):
    server = serve()
    client = clients(server, max_resends=1)
    client.sc_status()
    server.faults.ask_resend = 10
    with pytest.raises(TooManyResends, match="asked for it 2 times"):
        client.item_information("B1")


def test_replies_dribbled_in_small_pieces(serve, clients):
    server = serve()
    client = clients(server)
    client.checkout("P001", "B1")
    client.checkout("P001", "B2")
    server.faults.chunk, server.faults.chunk_delay = 3, 0.001
    info = client.patron_information("P001", summary="charged")
    assert info.charged == ("B1 Die Blechtrommel", "B2 L'Étranger")


def test_crlf_terminated_replies(serve, clients):
    server = serve()
    server.faults.crlf = True
    client = clients(server)
    for _ in range(3):
        assert client.item_information("B1").title == "Die Blechtrommel"
    assert codes(server) == ["93", "17", "17", "17"]


def test_the_client_can_send_crlf_too(serve, clients):
    server = serve()
    client = clients(server, terminator=CRLF)
    assert client.item_information("B1").available
    assert client.item_information("B2").available


def test_a_slow_reply_within_the_timeout_is_awaited(serve, clients):
    server = serve()
    client = clients(server, timeout=2.0)
    client.sc_status()
    server.faults.delay = 0.3
    assert client.item_information("B1").title == "Die Blechtrommel"


def test_a_reply_later_than_the_timeout_closes_the_connection(serve, clients):
    server = serve()
    client = clients(server, timeout=0.4)
    client.sc_status()
    server.faults.delay = 0.8
    with pytest.raises(Sip2Timeout, match="outcome is unknown"):
        client.item_information("B1")
    assert not client.connected
    server.faults.delay = 0
    assert client.item_information("B2").title == "L'Étranger"
    assert server.connections == 2 and server.logins == 2


def test_a_dropped_query_is_sent_again_after_logging_in_again(serve, clients):
    server = serve()
    client = clients(server)
    client.sc_status()
    server.faults.drop_before = 1
    assert client.item_information("B1").title == "Die Blechtrommel"
    assert codes(server) == ["93", "99", "17", "93", "17"]
    assert (server.connections, server.logins) == (2, 2)


def test_a_query_dropped_twice_is_given_up(serve, clients):
    server = serve()
    client = clients(server)
    client.sc_status()
    server.faults.drop_before = 3  # the request, the new login, the third connection's login
    with pytest.raises(ConnectionLost):
        client.item_information("B1")
    assert codes(server) == ["93", "99", "17", "93"]
    assert not client.connected


def test_a_checkout_whose_reply_was_lost_is_retried_and_reported_as_such(serve, clients):
    server = serve()
    client = clients(server)
    client.sc_status()
    server.faults.drop_after = 1  # the loan is made, the reply never arrives
    loan = client.checkout("P001", "B1", pin="1234")
    assert loan.ok and loan.retried
    assert loan.renewal  # the library system saw the repeat as a renewal
    assert server.ils.items["B1"].charged_to == "P001"
    assert server.ils.items["B1"].renewals == 1
    repeated = [m for m in server.decoded() if isinstance(m, Checkout)]
    assert len(repeated) == 2


def test_circulation_retry_can_be_switched_off(serve, clients):
    server = serve()
    client = clients(server, retry_circulation=False)
    client.sc_status()
    server.faults.drop_after = 1
    with pytest.raises(ConnectionLost):
        client.checkout("P001", "B1")
    assert server.ils.items["B1"].charged_to == "P001"  # done, and the client knows it may be
    assert client.item_information("B1").circulation_status == "04"


def test_a_system_that_ignores_no_block_refuses_the_offline_loan(serve, clients):
    server = serve()
    client = clients(server)
    then = datetime(2026, 11, 20, 9, 30)
    due = datetime(2026, 12, 4, 23, 59)
    server.faults.refuse_no_block = True
    refused = client.checkout("P001", "B1", no_block=True, transaction_date=then,
                              nb_due_date=due)
    assert not refused.ok and "No-block" in refused.screen_message
    server.faults.refuse_no_block = False
    accepted = client.checkout("P001", "B1", no_block=True, transaction_date=then,
                               nb_due_date=due)
    assert accepted.ok and accepted.due_date == due
    sent = server.decoded()[-1]
    assert (sent.no_block, sent.transaction_date, sent.nb_due_date) == (True, then, due)


def test_a_system_without_error_detection(serve, clients):
    server = serve()
    server.faults.ignore_error_detection = True
    client = clients(server)
    assert client.item_information("B1").title == "Die Blechtrommel"
    strict = clients(server, require_checksum=True)
    with pytest.raises(MissingChecksum):
        strict.item_information("B1")


def test_a_client_without_error_detection_sends_bare_messages(serve, clients):
    server = serve()
    server.faults.ignore_error_detection = True
    client = clients(server, error_detection=False)
    assert client.item_information("B1").available
    assert all(b"AZ" not in raw for raw in server.received)


def test_a_corrupted_request_is_answered_with_96_by_the_server(serve):
    """The test server itself: a request with a wrong checksum gets a request SC resend."""
    server = serve()
    with socket.create_connection(("127.0.0.1", server.port), timeout=3) as sock:
        body = codec.encode(ItemInformationRequest(transaction_date=datetime(2026, 1, 1),
                                                   item_identifier="B1"), sequence=0)
        wrong = b"0000" if body[-4:] != b"0000" else b"0001"
        sock.sendall(body[:-4] + wrong + b"\r")
        assert sock.recv(100) == b"96AZFEF6\r"


# -- TLS and connecting -------------------------------------------------------------------

def test_tls_with_a_ca_file(serve, clients, tmp_path):
    context, ca_file = make_tls(tmp_path)
    server = serve(tls=context)
    client = clients(server, ca_file=str(ca_file))
    assert client.item_information("B1").title == "Die Blechtrommel"
    assert "tls" in repr(client)


def test_tls_refuses_an_untrusted_server(serve, clients, tmp_path):
    context, _ = make_tls(tmp_path)
    server = serve(tls=context)
    client = clients(server, tls=ssl.create_default_context(), connect_timeout=2)
    with pytest.raises(Sip2LinkError, match="TLS"):
        client.sc_status()


def test_nobody_listening_is_a_link_error(clients):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = Sip2Client("127.0.0.1", port, institution_id="x", timeout=1)
    with pytest.raises(Sip2LinkError, match="cannot connect"):
        client.sc_status()
    client.close()
    client.close()  # idempotent
