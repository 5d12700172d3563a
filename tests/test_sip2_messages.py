"""SIP2 messages as byte strings: every message in both directions, checksums, character
sets, leniency on reading, and the framing of a byte stream. No sockets.

Every expected frame below is written out literally. The AZ values were computed apart from
the code under test (a one-line sum of the bytes, negated, modulo 65536) and three are
published frames:

- "98YYYYYN60000320130424    1135112.00AOEPLMNA|...|AY1AZE80C" and the St. Albert
  "98YYYYNN01000320130808    ...|VNSIP 2.00.106 SirsiDynix Inc. 7.5.074.40|AY1AZD3FA":
  replies of SirsiDynix Symphony servers quoted in Edmonton Public Library's MeCard
  (mecard/sip/SIPMessage.java), with the trace "96AZFEF6" (a request SC resend).
- "97AZFEF5": the test case of ACSResend in ceridwen-standard-interchange-protocol-library
  (src/main/java/com/ceridwen/circulation/SIP/messages/ACSResend.java).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sync.sip2 import codec
from sync.sip2.errors import (
    BadCharset,
    BadChecksum,
    BadField,
    MessageTooLong,
    MissingChecksum,
    Sip2Error,
    Sip2FormatError,
    Truncated,
    UnknownMessage,
)
from sync.sip2.framing import CR, CRLF, MessageReader, frame
from sync.sip2.messages import (
    REGISTRY,
    AcsStatus,
    BlockPatron,
    Checkin,
    CheckinResponse,
    Checkout,
    CheckoutResponse,
    EndPatronSession,
    EndSessionResponse,
    ItemInformationRequest,
    ItemInformationResponse,
    Login,
    LoginResponse,
    PatronInformationRequest,
    PatronInformationResponse,
    PatronStatusRequest,
    PatronStatusResponse,
    Renew,
    RenewResponse,
    RequestAcsResend,
    RequestScResend,
    ScStatus,
)

WHEN = datetime(2026, 11, 25, 10, 0, 0)
DUE = datetime(2026, 12, 9, 23, 59, 0)
AO = "CN-431121"
TITLE = "Die Blechtrommel"

# (message, sequence number, the exact bytes in cp850)
CP850_CASES = {
    "93 login": (
        Login(login_user_id="kiosk", login_password="secret", location_code="Branch 2"), 0,
        b"9300CNkiosk|COsecret|CPBranch 2|AY0AZF35E"),
    "94 login response": (LoginResponse(ok=True), 0, b"941AY0AZFDFD"),
    "99 SC status": (ScStatus(status_code="0", max_print_width=40), 1,
                     b"9900402.00AY1AZFCA4"),
    "23 patron status": (
        PatronStatusRequest(language="001", transaction_date=WHEN, institution_id=AO,
                            patron_identifier="P001", terminal_password="tpw",
                            patron_password="1234"), 2,
        b"2300120261125    100000AOCN-431121|AAP001|ACtpw|AD1234|AY2AZF174"),
    "24 patron status response": (
        PatronStatusResponse(
            patron_status=frozenset({"charge_privileges_denied",
                                     "excessive_outstanding_fines"}),
            language="001", transaction_date=WHEN, institution_id=AO,
            patron_identifier="P001", personal_name="Müller, Anna", valid_patron=True,
            valid_patron_password=False, currency_type="CNY", fee_amount="12.50",
            screen_message=["Please pay"], print_line=["line1"]), 3,
        b"24Y         Y   00120261125    100000AOCN-431121|AAP001|AEM\x81ller, Anna|BLY|"
        b"CQN|BHCNY|BV12.50|AFPlease pay|AGline1|AY3AZDFBE"),
    "63 patron information": (
        PatronInformationRequest(language="001", transaction_date=WHEN, summary="charged",
                                 institution_id=AO, patron_identifier="P001",
                                 terminal_password="tpw", patron_password="1234",
                                 start_item=1, end_item=5), 4,
        b"6300120261125    100000  Y       AOCN-431121|AAP001|ACtpw|AD1234|BP1|BQ5|AY4AZED72"),
    "64 patron information response": (
        PatronInformationResponse(
            language="001", transaction_date=WHEN, hold_items_count=1,
            overdue_items_count=0, charged_items_count=2, fine_items_count=0,
            recall_items_count=0, unavailable_holds_count=0, institution_id=AO,
            patron_identifier="P001", personal_name="Müller, Anna", hold_items_limit=10,
            charged_items_limit=20, valid_patron=True, valid_patron_password=True,
            hold_items=["B3"], charged_items=["B1 Title one", "B2 Title two"],
            email_address="anna@example.org", screen_message=["Welcome"]), 5,
        b"64              00120261125    100000000100000002000000000000AOCN-431121|AAP001|"
        b"AEM\x81ller, Anna|BZ0010|CB0020|BLY|CQY|ASB3|AUB1 Title one|AUB2 Title two|"
        b"BEanna@example.org|AFWelcome|AY5AZCCDC"),
    "17 item information": (
        ItemInformationRequest(transaction_date=WHEN, institution_id=AO,
                               item_identifier="B1", terminal_password="tpw"), 6,
        b"1720261125    100000AOCN-431121|ABB1|ACtpw|AY6AZF436"),
    "18 item information response": (
        ItemInformationResponse(
            circulation_status="04", security_marker="00", fee_type="01",
            transaction_date=WHEN, hold_queue_length=0, due_date="20261209    100000",
            item_identifier="B1", title_identifier=TITLE, permanent_location="MAIN",
            current_location="MAIN"), 7,
        b"1804000120261125    100000CF0|AH20261209    100000|ABB1|AJDie Blechtrommel|AQMAIN|"
        b"APMAIN|AY7AZE773"),
    "11 checkout (no block, nb due date)": (
        Checkout(sc_renewal_policy=False, no_block=True, transaction_date=WHEN,
                 nb_due_date=DUE, institution_id=AO, patron_identifier="P001",
                 item_identifier="B1", terminal_password="tpw", patron_password="1234"), 8,
        b"11NY20261125    10000020261209    235900AOCN-431121|AAP001|ABB1|ACtpw|AD1234|"
        b"AY8AZECA0"),
    "12 checkout response": (
        CheckoutResponse(ok=True, renewal_ok=False, magnetic_media=None, desensitize=True,
                         transaction_date=WHEN, institution_id=AO, patron_identifier="P001",
                         item_identifier="B1", title_identifier=TITLE,
                         due_date="20261209    235900", screen_message=["Enjoy"]), 9,
        b"121NUY20261125    100000AOCN-431121|AAP001|ABB1|AJDie Blechtrommel|"
        b"AH20261209    235900|AFEnjoy|AY9AZE51A"),
    "09 checkin (return date)": (
        Checkin(no_block=False, transaction_date=WHEN, return_date=WHEN,
                current_location="Kiosk 1", institution_id=AO, item_identifier="B1",
                terminal_password="tpw"), 0,
        b"09N20261125    10000020261125    100000APKiosk 1|AOCN-431121|ABB1|ACtpw|AY0AZED5A"),
    "10 checkin response": (
        CheckinResponse(ok=True, resensitize=True, magnetic_media=None, alert=False,
                        transaction_date=WHEN, institution_id=AO, item_identifier="B1",
                        permanent_location="MAIN", title_identifier=TITLE,
                        patron_identifier="P001"), 1,
        b"101YUN20261125    100000AOCN-431121|ABB1|AQMAIN|AJDie Blechtrommel|AAP001|AY1AZEA47"),
    "29 renew (blank nb due date)": (
        Renew(third_party_allowed=False, no_block=False, transaction_date=WHEN,
              institution_id=AO, patron_identifier="P001", patron_password="1234",
              item_identifier="B1", terminal_password="tpw"), 2,
        b"29NN20261125    100000                  AOCN-431121|AAP001|AD1234|ABB1|ACtpw|"
        b"AY2AZEDB1"),
    "30 renew response (refused, empty due date)": (
        RenewResponse(ok=False, renewal_ok=False, transaction_date=WHEN, institution_id=AO,
                      patron_identifier="P001", item_identifier="B1", title_identifier=TITLE,
                      due_date="", screen_message=["Cannot renew"]), 3,
        b"300NUU20261125    100000AOCN-431121|AAP001|ABB1|AJDie Blechtrommel|AH|"
        b"AFCannot renew|AY3AZE5CF"),
    "35 end patron session": (
        EndPatronSession(transaction_date=WHEN, institution_id=AO, patron_identifier="P001",
                         terminal_password="tpw", patron_password="1234"), 4,
        b"3520261125    100000AOCN-431121|AAP001|ACtpw|AD1234|AY4AZF200"),
    "36 end session response": (
        EndSessionResponse(end_session=True, transaction_date=WHEN, institution_id=AO,
                           patron_identifier="P001", screen_message=["Goodbye"]), 5,
        b"36Y20261125    100000AOCN-431121|AAP001|AFGoodbye|AY5AZF1FF"),
    "01 block patron": (
        BlockPatron(card_retained=True, transaction_date=WHEN, institution_id=AO,
                    blocked_card_msg="Card retained by kiosk", patron_identifier="P001",
                    terminal_password="tpw"), 6,
        b"01Y20261125    100000AOCN-431121|ALCard retained by kiosk|AAP001|ACtpw|AY6AZEA4C"),
    "97 request ACS resend (published)": (RequestAcsResend(), None, b"97AZFEF5"),
    "96 request SC resend (published)": (RequestScResend(), None, b"96AZFEF6"),
}
SIRSI = (b"98YYYYYN60000320130424    1135112.00AOEPLMNA|AMEPLMNA|BXYYYYYYYYYYYNNYYY|"
         b"ANSIPCHK|AY1AZE80C")
ST_ALBERT = (b"98YYYYNN01000320130808    1509002.00AOst|AMSt. Albert Public Library|"
             b"BXYYYYYYYYYYYYYYYY|ANUnassigned|VNSIP 2.00.106 SirsiDynix Inc. 7.5.074.40|"
             b"AY1AZD3FA")


def test_every_message_type_has_a_literal_frame():
    covered = {message.code for message, _, _ in CP850_CASES.values()} | {"98"}
    assert covered == set(REGISTRY)


@pytest.mark.parametrize("case", sorted(CP850_CASES))
def test_writing_is_byte_exact(case):
    message, sequence, wire = CP850_CASES[case]
    assert codec.encode(message, sequence=sequence) == wire


@pytest.mark.parametrize("case", sorted(CP850_CASES))
def test_reading_gives_back_the_message(case):
    message, sequence, wire = CP850_CASES[case]
    decoded = codec.decode(wire)
    assert decoded.message == message
    assert decoded.sequence == sequence
    assert decoded.checksummed


def test_published_acs_status_reads_and_writes_back_byte_for_byte():
    decoded = codec.decode(SIRSI)
    status = decoded.message
    assert isinstance(status, AcsStatus)
    assert (status.online_status, status.checkin_ok, status.offline_ok) == (True, True, False)
    assert (status.timeout_period, status.retries_allowed) == (600, 3)
    assert status.date_time_sync == datetime(2013, 4, 24, 11, 35, 11)
    assert status.institution_id == "EPLMNA" and status.terminal_location == "SIPCHK"
    # BX "YYYYYYYYYYYNNYYY": positions 12 and 13 (item status update, patron enable) are N.
    assert status.supported_messages == {
        "23", "11", "09", "01", "99", "97", "93", "63", "35", "37", "17", "15", "29", "65"}
    assert codec.encode(status, sequence=decoded.sequence) == SIRSI


def test_published_frame_with_an_unknown_field_keeps_it_in_extra():
    decoded = codec.decode(ST_ALBERT)
    assert decoded.message.extra == [("VN", "SIP 2.00.106 SirsiDynix Inc. 7.5.074.40")]
    assert decoded.message.library_name == "St. Albert Public Library"
    assert codec.encode(decoded.message, sequence=1) == ST_ALBERT


def test_checksum_is_the_negated_sum_of_the_bytes():
    assert codec.checksum(b"97AZ") == "FEF5"  # 0x10000 - (0x39 + 0x37 + 0x41 + 0x5A)
    assert codec.checksum(b"") == "0000"
    assert codec.checksum(b"\xff" * 257) == f"{-255 * 257 & 0xFFFF:04X}"


def test_checksum_is_over_the_encoded_bytes_of_the_charset():
    message = PatronStatusResponse(language="001", transaction_date=WHEN, institution_id=AO,
                                   patron_identifier="P001", personal_name="Müller")
    latin = codec.encode(message, sequence=1)
    utf8 = codec.encode(message, sequence=1, charset="utf-8")
    assert b"M\x81ller" in latin and b"M\xc3\xbcller" in utf8
    assert latin[-4:] != utf8[-4:]
    with pytest.raises(BadChecksum):  # the same text read in the wrong charset
        codec.decode(utf8.replace(b"\xc3\xbc", b"\x81"))


def test_utf8_chinese_title_exact():
    wire = (b"1803000120261125    100000ABB2|AJ\xe7\xba\xa2\xe6\xa5\xbc\xe6\xa2\xa6|AQMAIN|"
            b"AY0AZEE75")
    message = ItemInformationResponse(circulation_status="03", security_marker="00",
                                      fee_type="01", transaction_date=WHEN,
                                      item_identifier="B2", title_identifier="红楼梦",
                                      permanent_location="MAIN")
    assert codec.encode(message, sequence=0, charset="utf-8") == wire
    assert codec.decode(wire, charset="utf-8").message == message


def test_gb18030_name_outside_gb2312_exact():
    # 䶮 (U+4DAE, CJK extension A) is FE 9F; 𠀀 (U+20000, extension B) takes four bytes.
    wire = (b"24              00120261125    100000AOCN-431121|AAP002|AE\xfe\x9f\x95\x32\x82\x36|"
            b"AF\xba\xec\xc2\xa5\xc3\xce|AY1AZEA1A")
    message = PatronStatusResponse(language="001", transaction_date=WHEN, institution_id=AO,
                                   patron_identifier="P002", personal_name="䶮𠀀",
                                   screen_message=["红楼梦"])
    assert codec.encode(message, sequence=1, charset="gb18030") == wire
    assert codec.decode(wire, charset="gb18030").message == message


def test_gb18030_trail_byte_that_looks_like_a_bar_does_not_split_the_field():
    # 亅 is 81 7C in gb18030: its second byte is '|'.
    message = ItemInformationResponse(transaction_date=WHEN, item_identifier="B9",
                                      title_identifier="亅旳Z", permanent_location="MAIN")
    wire = codec.encode(message, sequence=2, charset="gb18030")
    assert b"\x81|" in wire
    decoded = codec.decode(wire, charset="gb18030").message
    assert decoded.title_identifier == "亅旳Z" and decoded.extra == []


def test_text_the_charset_cannot_carry_is_refused_naming_the_field():
    message = Login(login_user_id="kiosk", login_password="secret", location_code="县图书馆")
    with pytest.raises(BadCharset, match=r"login \(93\) location_code \(CP\).*cp850"):
        codec.encode(message)


def test_bytes_invalid_in_the_charset_are_refused():
    with pytest.raises(BadCharset, match="utf-8"):
        codec.decode(b"941\xff", charset="utf-8")
    with pytest.raises(BadCharset, match="unknown character set"):
        codec.check_charset("klingon")
    with pytest.raises(BadCharset, match="not ASCII-compatible"):
        codec.check_charset("utf-16")


def test_dates_local_utc_and_blank():
    login = Checkout(transaction_date=datetime(2026, 11, 25, 2, 0, tzinfo=UTC))
    wire = codec.encode(login, error_detection=False)
    assert wire.startswith(b"11NN20261125   Z020000" + b" " * 18 + b"AO|AA|AB|AC|")
    assert codec.decode(wire).message == login


def test_other_zone_texts_are_read_as_local_time():
    request = codec.decode(b"1720261125 EST100000AOx|ABB1|").message
    assert request.transaction_date == datetime(2026, 11, 25, 10, 0, 0)


def test_a_flipped_byte_fails_the_checksum_naming_the_expected_value():
    wire = bytearray(CP850_CASES["12 checkout response"][2])
    wire[30] ^= 0x01
    with pytest.raises(BadChecksum, match="expected AZ"):
        codec.decode(bytes(wire))


def test_lower_case_checksum_is_accepted():
    assert codec.decode(b"941AY0AZfdfd").message == LoginResponse(ok=True)


def test_missing_error_detection_is_accepted_unless_required():
    decoded = codec.decode(b"941")
    assert (decoded.message, decoded.sequence, decoded.checksummed) == (
        LoginResponse(ok=True), None, False)
    with pytest.raises(MissingChecksum):
        codec.decode(b"941", require_checksum=True)
    assert codec.encode(LoginResponse(ok=False), error_detection=False) == b"940"


def test_verification_can_be_switched_off():
    assert codec.decode(b"941AY0AZ0000", verify=False).sequence == 0


def test_sequence_number_must_be_one_digit():
    with pytest.raises(BadField, match="sequence number must be 0-9"):
        codec.encode(LoginResponse(ok=True), sequence=10)


def test_reading_is_lenient_about_missing_blank_unknown_and_repeated_fields():
    text = (b"64              00120261125    100000    0000000200000000    "
            b"AAP001|BL|BZ|AUB1|AUB2|XXsomething|AAP999|AEAnna|ZZ|")
    reply = codec.decode(text).message
    assert reply.institution_id == ""  # required but missing: its default
    assert reply.hold_items_count is None and reply.unavailable_holds_count is None
    assert reply.valid_patron is None and reply.hold_items_limit is None
    assert reply.charged_items == ["B1", "B2"]
    assert reply.personal_name == "Anna"
    assert reply.extra == [("XX", "something"), ("AA", "P999"), ("ZZ", "")]


def test_extra_fields_are_written_after_the_known_ones():
    message = LoginResponse(ok=True, extra=[("ZY", "vendor"), ("ZZ", "")])
    assert codec.encode(message, error_detection=False) == b"941ZYvendor|ZZ|"
    with pytest.raises(BadField, match="two letters or digits"):
        codec.encode(LoginResponse(extra=[("Z", "x")]))


@pytest.mark.parametrize(("message", "pattern"), [
    (Login(login_user_id="a|b", login_password="x"), r"'\|' cannot appear"),
    (Login(login_user_id="a\rb", login_password="x"), "cannot appear"),
    (ScStatus(max_print_width=1000), "does not fit in 3 digits"),
    (PatronStatusRequest(language="1"), "exactly 3 characters"),
    (PatronStatusResponse(patron_status=frozenset({"bogus"})), "unknown flags"),
    (PatronInformationRequest(summary="everything"), "is not one of"),
    (Checkout(transaction_date="2026-11-25"), "expected a datetime"),
    (Checkout(no_block=None), "expected True or False"),
    (PatronStatusResponse(screen_message="not a list"), "expected a list"),
])
def test_values_that_cannot_be_written_are_refused(message, pattern):
    with pytest.raises(BadField, match=pattern):
        codec.encode(message)


@pytest.mark.parametrize(("wire", "error", "pattern"), [
    (b"9", Truncated, "too short"),
    (b"12", Truncated, r"checkout response \(12\): the fixed part needs 24"),
    (b"XX123", UnknownMessage, "'XX'"),
    (b"1720261325    100000AOx|", BadField, "not a valid date"),
    (b"172026112X    100000AOx|", BadField, "not a SIP2 date"),
    (b"64              00120261125    1000000x01000000020000000000000000AA1|", BadField,
     "is not a number"),
    (b"18030001" + b"20261125    100000" + b"CFmany|", BadField, "CF.*not a number"),
])
def test_unreadable_messages_raise_clear_errors(wire, error, pattern):
    with pytest.raises(error, match=pattern):
        codec.decode(wire)


def test_error_leaves_also_inherit_the_built_ins():
    assert issubclass(BadChecksum, Sip2FormatError) and issubclass(BadChecksum, ValueError)
    assert issubclass(Sip2FormatError, Sip2Error)
    from sync.sip2.errors import ConnectionLost, LoginRefused, Sip2Timeout
    assert issubclass(ConnectionLost, ConnectionError) and issubclass(Sip2Timeout, TimeoutError)
    assert issubclass(LoginRefused, PermissionError)


# -- framing ------------------------------------------------------------------------------

def test_frame_adds_the_terminator_and_refuses_line_breaks_inside():
    assert frame(b"941AY0AZFDFD") == b"941AY0AZFDFD\r"
    assert frame(b"941AY0AZFDFD", CRLF) == b"941AY0AZFDFD\r\n"
    with pytest.raises(BadField):
        frame(b"94\r1")
    with pytest.raises(BadField, match="CR or CR LF"):
        frame(b"941", b"\n\r")


def test_reader_accepts_cr_crlf_and_lf_in_any_pieces():
    reader = MessageReader()
    stream = b"941AY0AZFDFD\r\n940\r941\n\r\n"
    got = [m for byte in range(len(stream)) for m in reader.feed(stream[byte:byte + 1])]
    assert got == [b"941AY0AZFDFD", b"940", b"941"]
    assert reader.pending == 0


def test_reader_holds_a_partial_message_until_its_terminator():
    reader = MessageReader()
    assert reader.feed(b"941AY0") == []
    assert reader.pending == 6
    assert reader.feed(b"AZFDFD" + CR + b"94") == [b"941AY0AZFDFD"]
    assert reader.pending == 2


def test_reader_guards_the_length_and_recovers_at_the_next_terminator():
    reader = MessageReader(max_length=10)
    assert reader.feed(b"940\r") == [b"940"]
    with pytest.raises(MessageTooLong, match="more than 10 bytes"):
        reader.feed(b"941\r" + b"x" * 11)
    assert reader.feed(b"yyy") == [b"941"]  # found before the error, handed out now
    assert reader.feed(b"zz\r940\r") == [b"940"]  # the long one was skipped to its end
    assert reader.pending == 0
