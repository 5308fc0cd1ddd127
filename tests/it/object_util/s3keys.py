#!/usr/bin/env python3
"""An S3 client no one here wrote (boto3) for the key tests: puts, lists and reads keys byte for
byte. Keys travel as hex in JSON on stdin/stdout, so no shell or JSON escaping can change them.

usage: s3keys.py ENDPOINT ACCESS SECRET BUCKET put|list|get|mkbucket
  put:  stdin [{"key": hex, "data": hex}] -> stdout [{"key": hex, "ok": bool, "error": str}]
  list: -> stdout [hex key] (every key in the bucket; list-plain: keys not URL-encoded)
  get:  stdin [hex key] -> stdout [{"key": hex, "data": hex or null}]
  delete: stdin [hex key]
"""
import json
import sys
import urllib.parse

import boto3
from botocore.config import Config


def main():
    endpoint, access, secret, bucket, verb = sys.argv[1:6]
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    out = []
    if verb == "mkbucket":
        s3.create_bucket(Bucket=bucket)
    elif verb == "put":
        for item in json.load(sys.stdin):
            key = bytes.fromhex(item["key"]).decode("utf-8")
            try:
                s3.put_object(Bucket=bucket, Key=key, Body=bytes.fromhex(item["data"]))
                out.append({"key": item["key"], "ok": True, "error": ""})
            except Exception as e:  # the server refused this key: the test leaves it out
                out.append({"key": item["key"], "ok": False, "error": str(e)[:300]})
    elif verb in ("list", "list-plain"):
        if verb == "list-plain":
            # a server that echoes EncodingType=url without encoding (s3s-fs) is read as it
            # answers: keys as plain XML text, not decoded a second time
            from botocore.handlers import set_list_objects_encoding_type_url
            s3.meta.events.unregister(
                "before-parameter-build.s3.ListObjectsV2", set_list_objects_encoding_type_url
            )
        token = None
        # botocore asks for url-encoded keys and decodes them itself (control characters)
        while True:
            args = {"Bucket": bucket}
            if token:
                args["ContinuationToken"] = token
            page = s3.list_objects_v2(**args)
            out.extend(o["Key"].encode("utf-8").hex() for o in page.get("Contents", []))
            if not page.get("IsTruncated"):
                break
            token = page["NextContinuationToken"]
    elif verb == "delete":
        for hk in json.load(sys.stdin):
            s3.delete_object(Bucket=bucket, Key=bytes.fromhex(hk).decode("utf-8"))
    elif verb == "get":
        for hk in json.load(sys.stdin):
            key = bytes.fromhex(hk).decode("utf-8")
            try:
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                out.append({"key": hk, "data": body.hex()})
            except Exception:
                out.append({"key": hk, "data": None})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
