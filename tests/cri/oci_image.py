#!/usr/bin/env python3
"""Writes an OCI image archive (the layout `ctr images import` reads) holding
busybox-static and some of its applets, with no registry and no builder.

    oci_image.py OUT.tar NAME ENTRYPOINT [ARG]... [--applet NAME]... [--file PATH=TEXT]...

The layer is an uncompressed tar; every timestamp is 0, so the same inputs
give the same digests."""

import hashlib
import io
import json
import sys
import tarfile


def entry(name, kind=tarfile.REGTYPE, data=b"", mode=0o755, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.size = kind, mode, link, len(data)
    return info, io.BytesIO(data) if data else None


def layer(applets, files):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in ["bin", "etc", "tmp", "www", "proc", "sys", "dev"]:
            tar.addfile(*entry(directory, tarfile.DIRTYPE))
        with open("/bin/busybox", "rb") as busybox:
            tar.addfile(*entry("bin/busybox", data=busybox.read()))
        for applet in applets:
            tar.addfile(*entry(f"bin/{applet}", tarfile.SYMTYPE, link="busybox"))
        for path, text in files:
            tar.addfile(*entry(path, data=text.encode(), mode=0o644))
    return out.getvalue()


def blob(tar, data, media_type):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo("blobs/sha256/" + digest[7:])
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def main(argv):
    out, name, rest = argv[0], argv[1], argv[2:]
    command, applets, files = [], [], []
    while rest:
        arg = rest.pop(0)
        if arg == "--applet":
            applets.append(rest.pop(0))
        elif arg == "--file":
            path, text = rest.pop(0).split("=", 1)
            files.append((path, text))
        else:
            command.append(arg)
    rootfs = layer(applets, files)
    diff_id = "sha256:" + hashlib.sha256(rootfs).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": command, "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    with tarfile.open(out, "w") as tar:
        tar.addfile(*entry("oci-layout", data=b'{"imageLayoutVersion":"1.0.0"}', mode=0o644))
        tar.addfile(*entry("blobs", tarfile.DIRTYPE))
        tar.addfile(*entry("blobs/sha256", tarfile.DIRTYPE))
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": blob(tar, json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json"),
            "layers": [blob(tar, rootfs, "application/vnd.oci.image.layer.v1.tar")],
        }
        descriptor = blob(tar, json.dumps(manifest).encode(), manifest["mediaType"])
        descriptor["annotations"] = {"io.containerd.image.name": name}
        descriptor["platform"] = {"architecture": "amd64", "os": "linux"}
        index = {"schemaVersion": 2, "manifests": [descriptor]}
        tar.addfile(*entry("index.json", data=json.dumps(index).encode(), mode=0o644))


if __name__ == "__main__":
    main(sys.argv[1:])
