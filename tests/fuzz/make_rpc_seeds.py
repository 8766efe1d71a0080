#!/usr/bin/env python3
"""Writes seed requests for fuzz_rpc (tests/fuzz/corpus/rpc/): one packed
ft.Request per RPC, hand-encoded so no protobuf package is needed."""
import os
import struct

def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out

def field(num, wire, payload):
    key = varint(num << 3 | wire)
    if wire == 0:
        return key + varint(payload)
    if wire == 1:
        return key + struct.pack("<d", payload)
    if wire == 5:
        return key + struct.pack("<f", payload)
    return key + varint(len(payload)) + payload

def s(num, text):
    return field(num, 2, text.encode())

def request(case, body):
    return field(1, 0, 1) + field(2, 0, 7) + field(case, 2, body)

seeds = {
    "ping": request(10, s(1, "hello")),
    "status": request(11, b""),
    "model_import": request(20, s(1, "/tmp/none.bin") + s(2, "m")),
    "model_list": request(21, b""),
    "model_show": request(22, s(1, "m")),
    "model_remove": request(23, s(1, "m") + field(2, 0, 1)),
    "data_upload_begin": request(35, field(1, 0, 20) + s(2, "ab" * 32)),
    "data_upload_chunk": request(36, s(1, "00" * 16) + field(2, 0, 0) + s(3, "para one\n\npara two\n")),
    "data_upload_status": request(37, s(1, "00" * 16)),
    # enums are varints: DatasetKind TEXT = 2, JobType SFT = 1, TrainMethod
    # LORA = 2, JobState QUEUED = 1
    "data_upload_commit": request(38, s(1, "00" * 16) + s(2, "t.txt") + field(3, 0, 2) + s(4, "d")
                                  + field(5, 1, 0.5) + s(10, "text") + field(11, 0, 1)),
    "data_list": request(32, b""),
    "data_show": request(33, s(1, "d")),
    "data_remove": request(34, s(1, "d")),
    "job_submit": request(40, field(1, 2, s(1, "m") + s(2, "d") + field(3, 0, 1) + field(4, 0, 2)
                                    + field(5, 0, 4) + field(10, 5, 0.001))),
    "job_list": request(41, field(1, 0, 1)),
    "job_show": request(42, field(1, 0, 1)),
    "job_cancel": request(43, field(1, 0, 1)),
    "job_metrics": request(44, field(1, 0, 1) + field(2, 0, 0)),
    "job_logs": request(45, field(1, 0, 1)),
    "generate_poll": request(55, field(1, 0, 12345) + field(2, 0, 3)),
    "generate_cancel": request(56, field(1, 0, 12345)),
}
out = os.path.join(os.path.dirname(__file__), "corpus", "rpc")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
