"""nginx's load protection (issue 12, item 6): requests in progress per
address (limit_conn) and the body-read budget, on a real nginx over the
session's stack."""
import json
import socket


SLOW = "127.9.9.9"  # the slow client's own address


def _slow_body(aux, source):
    """A POST whose body never comes: headers and 10 of 100 bytes."""
    s = socket.create_connection((aux["host"], aux["port"]), timeout=30, source_address=(source, 0))
    s.sendall(b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 100\r\n\r\n{\"name\":\"x")
    return s


def _answer_or_close(sock):
    """What nginx sends first: an answer, or b"" when it just closes (a
    reset, with reset_timedout_connection on, may drop an unread answer, so
    this reads as soon as anything arrives)."""
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""


def test_one_address_holds_at_most_conn_limit_requests(stack):
    aux = stack.start_nginx(conn_limit=2, body_timeout=2)
    held = [_slow_body(aux, SLOW) for _ in range(3)]
    try:
        # another address is not affected meanwhile
        assert aux["request"]("GET", "/readyz", source="127.9.9.10").status == 200
        # one of the three is refused at once; the two others are held until
        # their bodies stall for body_timeout, then cut off
        answers = sorted(_answer_or_close(s) for s in held)
    finally:
        for s in held:
            s.close()
    refused = [a for a in answers if a.startswith(b"HTTP/1.1 429")]
    assert len(refused) == 1, answers
    head, _, body = refused[0].partition(b"\r\n\r\n")
    assert b"Retry-After: 1" in head and b"X-Served-By: nginx" in head
    assert json.loads(body)["error"] == "rate_limited"
    for cut in answers:
        if cut is not refused[0]:
            assert cut == b"" or cut.startswith(b"HTTP/1.1 408"), cut[:200]
    # and the address is free again
    assert aux["request"]("GET", "/readyz", source=SLOW).status == 200


def test_limits_are_rendered_from_the_settings(stack):
    aux = stack.start_nginx(conn_limit=0, header_timeout=7, body_timeout=9)
    path = next(f for f in aux["plan"].files if f.endswith("jobmaster.conf"))
    with open(path) as fh:
        conf = fh.read()
    assert "client_header_timeout 7s;" in conf and "client_body_timeout 9s;" in conf
    assert "limit_conn jm_conn_per_client" not in conf
    assert aux["request"]("GET", "/readyz").status == 200
