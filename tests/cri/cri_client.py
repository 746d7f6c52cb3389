#!/usr/bin/env python3
"""A minimal CRI client standing in for kubelet: one gRPC call per run.

    cri_client.py SOCKET METHOD [REQUEST-JSON]

METHOD is a RuntimeService method (RunPodSandbox, Status, ...); the request
is the CRI message in its JSON form. Prints the response as JSON (ExecSync's
output as text); on a gRPC
error prints its code and details to stderr and exits 1. The messages come
from the published CRI API: api.proto is kubernetes/cri-api's
pkg/apis/runtime/v1/api.proto (commit 791729b2, Apache-2.0, header kept),
compiled by grpc_tools.protoc into the directory named by CRI_PB_DIR."""

import json
import os
import sys

sys.path.insert(0, os.environ["CRI_PB_DIR"])

import grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402

import api_pb2  # noqa: E402


def main(socket, method, body="{}"):
    request_type = getattr(api_pb2, method + "Request")
    response_type = getattr(api_pb2, method + "Response")
    with grpc.insecure_channel("unix://" + socket) as channel:
        call = channel.unary_unary(
            "/runtime.v1.RuntimeService/" + method,
            request_serializer=request_type.SerializeToString,
            response_deserializer=response_type.FromString,
        )
        request = json_format.ParseDict(json.loads(body), request_type())
        try:
            response = call(request, timeout=60)
        except grpc.RpcError as error:
            print(f"{error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    if method == "ExecSync":
        # Bytes fields would print as base64: give the exec's output as text.
        output = {
            "exit_code": response.exit_code,
            "stdout": response.stdout.decode(errors="replace"),
            "stderr": response.stderr.decode(errors="replace"),
        }
        print(json.dumps(output))
    else:
        print(json_format.MessageToJson(response, preserving_proto_field_name=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
