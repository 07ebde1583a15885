#!/usr/bin/env python3
"""Write the seed corpora in tests/fuzz/corpus/: a few valid inputs of
each kind and some near misses, so the fuzzers start from real shapes.
Run it again after changing a format; the files are committed. Inputs a
fuzzer found (found-*) are kept beside them as regression seeds."""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# ingest: first byte = content type (bits 0-1: json, ndjson, json;charset,
# text/plain) and sink (bit 2: all, kv); then the body.
ALL = ('{"a":1,"b":2,"c":-9223372036854775808,"d":1.5,"e":0.1,"f":"12.50","g":true,'
       '"h":"text\\twith\\\\escapes","i":"abc","j":"0190a0e4-7b8c-7abc-8123-456789abcdef",'
       '"k":"2026-01-31","l":"2026-01-31T12:00:00.123+01:00","m":"2026-01-31T12:00:00",'
       '"n":{"x":[1,2,{"y":null}]},"o":[true,false,"\\u00e9"]}')
write("ingest", "all_types", b"\x00" + ALL.encode())
write("ingest", "array", b"\x00[" + ALL.encode() + b"," + b'{"b":7}' + b"]")
write("ingest", "ndjson", b"\x01" + b'{"b":1}\n{"b":2,"h":null}\r\n\n{"b":3}\n')
write("ingest", "charset", b"\x02" + b'{"b":1}')
write("ingest", "wrong_type", b"\x03{}")
write("ingest", "kv", b"\x04" + b'[{"k":"a","v":{"deep":[[[[1]]]]}},{"k":"b"}]')
write("ingest", "bad_utf8", b"\x00" + b'{"b":1,"h":"\xff"}')
write("ingest", "dup_key", b"\x00" + b'{"b":1,"b":2}')
write("ingest", "deep", b"\x04" + b'{"k":"x","v":' + b"[" * 12 + b"]" * 12 + b"}")
write("ingest", "numeric", b"\x00" + b'{"b":1,"f":"-0000.000100e-5"}')
# The streaming reader: keys repeated in nested objects, escapes, surrogate
# pairs, NDJSON lines with many commas.
write("ingest", "nested_keys", b"\x04" + b'[{"k":"a","v":{"a":{"x":1,"y":2},"b":{"x":1,"x":2}}},'
      b'{"k":"b","v":{"\\u0061":1,"a":2}}]')
write("ingest", "escapes", b"\x00" + b'{"b":1,"h":"\\ud83d\\ude00\\n\\/","o":{"k\\"":-0.0,"e":1e-7}}')
# A key longer than max_string_bytes (4096 in the target) inside a jsonb
# value: its length counts, its bytes past what was kept are never read.
write("ingest", "long_nested_key", b"\x04" + b'{"k":"a","v":{"' + b"K" * 5000 + b'":1}}')
write("ingest", "ndjson_wide", b"\x05" + b'{"k":"a","v":[1,2,3]}\n{"k":"b","v":{"x":[{},{}]}}\n')


# http: bytes a client sends on one connection (fuzz_http.c serves /echo,
# /inline and /close).
write("http", "get", b"GET /inline HTTP/1.1\r\nHost: x\r\n\r\n")
write("http", "post", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
write("http", "chunked", b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      b"3;e=1\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n")
write("http", "pipelined", b"GET /inline HTTP/1.1\r\nHost: x\r\n\r\n"
      b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
      b"GET /close HTTP/1.1\r\nHost: x\r\n\r\nGET /inline HTTP/1.1\r\nHost: x\r\n\r\n")
write("http", "http10", b"GET /inline HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
      b"GET /inline HTTP/1.0\r\n\r\n")
write("http", "expect", b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
      b"Content-Length: 3\r\n\r\nabc")
write("http", "smuggle_cl_te", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
      b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /inline HTTP/1.1\r\nHost: x\r\n\r\n")
write("http", "refused_body", b"POST /nosuch HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
      b"GET /inline HTTP/1.1\r\nHost: x\r\n\r\n")

# envelope: see common/envelope.h for the layout.
def s(text):
    b = text.encode()
    if len(b) < 32:
        return bytes([0xa0 | len(b)]) + b
    return b"\xd9" + bytes([len(b)]) + b


def envelope(records, ncols=4, count=None, version=1):
    out = bytes([version]) + b"\xce" + struct.pack(">I", len(records) if count is None else count)
    out += b"\xcf" + struct.pack(">Q", 1795400000000000)
    out += s("0190a0e4-7b8c-7abc-8123-456789abcdef")
    if version >= 2:
        out += b"\xcf" + struct.pack(">Q", 0x1122334455667788)
    out += s("orders") + bytes([ncols])
    for r in records:
        out += bytes([0x90 | len(r)]) + b"".join(r)
    return out


rec = [b"\xd3" + struct.pack(">q", -5), s("tab\there"), b"\xcb" + struct.pack(">d", 0.1), b"\xc3"]
nul = [b"\xc0", b"\xc0", b"\xc0", b"\xc0"]
write("envelope", "two_records", envelope([rec, nul]))
write("envelope", "empty", envelope([]))
write("envelope", "count_lies", envelope([rec], count=4000000000))
write("envelope", "huge_array", envelope([]) + b"\xdd\xff\xff\xff\xff")
write("envelope", "str32", envelope([[b"\x01", b"\xdb\x00\x00\x00\x05hello", b"\xc0", b"\xc2"]]))
write("envelope", "truncated", envelope([rec])[:-3])
write("envelope", "map_value", envelope([[b"\x01", b"\x81\xa1a\x01", b"\xc0", b"\xc0"]]))
write("envelope", "v2_two_records", envelope([rec, nul], version=2))
write("envelope", "v2_truncated_shape", envelope([rec], version=2)[:58])

# config: INI text; also read as a tokens file.
write("config", "full", """[server]
listen = 127.0.0.1:8080
threads = 4
tokens_file = /etc/spillway/tokens
max_json_depth = 8
[redis]
host = 127.0.0.1
user = spillway
password = secret
[postgres]
conninfo = dbname=spillway
[flusher]
id = f-1
[sink.orders]
table = public.orders
mode = upsert
key = id
columns = id bigint not null, customer text not null, total numeric,
    tags jsonb, placed_at timestamptz, code varchar(12)
""")
write("config", "bad", "[server]\nthreads = many\n[sink.x]\ncolumns = id bogus\n")
write("config", "tokens", "# tokens\n" + "ab" * 32 + " orders\n" + "CD" * 32 + " *\n")
