"""Writes the KMIP request fixtures of crates/ekm-kmip/tests/fixtures/ with PyKMIP 0.11's own
message encoder (the bytes its client sends): batches with the ID Placeholder (Query + Create +
Get + Get Attributes in one message, as arrays send them), Locate by an `x-` attribute with
Maximum Items, Register, and KMIP 2.0 Create. Run: target/venv-python-tests/bin/python
tests/python/make_kmip_fixtures.py OUTDIR
"""

import sys

from kmip.core import enums, objects, utils
from kmip.core.factories.attributes import AttributeFactory
from kmip.core.messages import contents, messages, payloads

F = AttributeFactory()
OUT = sys.argv[1]


def message(version, items):
    header = messages.RequestHeader(
        protocol_version=contents.ProtocolVersion(version[0], version[1]),
        batch_count=contents.BatchCount(len(items)))
    batch = [messages.RequestBatchItem(operation=contents.Operation(op), request_payload=p)
             for op, p in items]
    m = messages.RequestMessage(request_header=header, batch_items=batch)
    kv = {(1, 2): enums.KMIPVersion.KMIP_1_2, (1, 4): enums.KMIPVersion.KMIP_1_4,
          (2, 0): enums.KMIPVersion.KMIP_2_0}[version]
    buf = utils.BytearrayStream()
    m.write(buf, kmip_version=kv)
    return bytes(buf.buffer)


def aes256(*extra):
    return objects.TemplateAttribute(attributes=[
        F.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_ALGORITHM,
                           enums.CryptographicAlgorithm.AES),
        F.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_LENGTH, 256),
        F.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_USAGE_MASK,
                           [enums.CryptographicUsageMask.ENCRYPT,
                            enums.CryptographicUsageMask.DECRYPT]),
        *extra])


def write(name, data):
    with open(f"{OUT}/{name}", "w") as f:
        f.write(data.hex() + "\n")


O = enums.Operation
write("01-batch-query-create-activate-get-getattributes-1.4-ok.hex", message((1, 4), [
    (O.QUERY, payloads.QueryRequestPayload(query_functions=[
        enums.QueryFunction.QUERY_OPERATIONS, enums.QueryFunction.QUERY_OBJECTS])),
    (O.CREATE, payloads.CreateRequestPayload(
        object_type=enums.ObjectType.SYMMETRIC_KEY,
        template_attribute=aes256(F.create_attribute(enums.AttributeType.NAME, "vol-batch"),
                                  F.create_attribute("x-tier", "gold")))),
    (O.ACTIVATE, payloads.ActivateRequestPayload()),
    (O.GET, payloads.GetRequestPayload()),
    (O.GET_ATTRIBUTES, payloads.GetAttributesRequestPayload(
        attribute_names=["State", "Name", "x-tier", "Digest"])),
]))
write("02-locate-x-attribute-maximum-items-1.4-ok.hex", message((1, 4), [
    (O.LOCATE, payloads.LocateRequestPayload(
        maximum_items=1,
        attributes=[F.create_attribute("x-tier", "gold")])),
]))
write("03-create-2.0-ok.hex", message((2, 0), [
    (O.CREATE, payloads.CreateRequestPayload(
        object_type=enums.ObjectType.SYMMETRIC_KEY,
        template_attribute=aes256(F.create_attribute(enums.AttributeType.NAME, "vol-2.0")))),
    (O.GET_ATTRIBUTE_LIST, payloads.GetAttributeListRequestPayload()),
]))
write("04-discover-versions-1.2-ok.hex", message((1, 2), [
    (O.DISCOVER_VERSIONS, payloads.DiscoverVersionsRequestPayload(protocol_versions=[
        contents.ProtocolVersion(2, 0), contents.ProtocolVersion(1, 2)])),
]))
write("05-get-unknown-uid-1.2.hex", message((1, 2), [
    (O.GET, payloads.GetRequestPayload(unique_identifier="1")),
]))
