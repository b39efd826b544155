"""The online reader's value conversion gives what Feast's ``OnlineResponse.to_dict`` gives."""

from __future__ import annotations

from feast.online_response import OnlineResponse
from feast.protos.feast.serving.ServingService_pb2 import GetOnlineFeaturesResponse
from feast.protos.feast.types.Value_pb2 import Null, StringList, Value

from mlops_pipeline.features.access import _plain_columns

COLUMNS = {
    "customer_id": [Value(int64_val=7), Value(int64_val=2**40)],
    "tenure_months": [Value(int32_val=-3), Value()],
    "monthly_charges": [Value(double_val=18.62), Value(double_val=float("inf"))],
    "ratio": [Value(float_val=0.5), Value()],
    "plan": [Value(string_val="basic"), Value(string_val="")],
    "autopay": [Value(bool_val=False), Value(bool_val=True)],
    # Kinds outside the plain scalars go through Feast's own conversion.
    "seen_at": [Value(unix_timestamp_val=1_700_000_000), Value()],
    "tags": [Value(string_list_val=StringList(val=["a", "b"])), Value(null_val=Null.NULL)],
}


def _response() -> OnlineResponse:
    proto = GetOnlineFeaturesResponse()
    proto.metadata.feature_names.val.extend(COLUMNS)
    for values in COLUMNS.values():
        proto.results.add().values.extend(values)
    return OnlineResponse(proto)


def test_plain_columns_equal_feasts_to_dict():
    response = _response()
    expected = response.to_dict()
    converted = _plain_columns(response)
    assert converted == expected
    assert list(converted) == list(COLUMNS)
    # Same types too: an int stays an int, an unset value is None, not a zero.
    for name, values in expected.items():
        assert [type(v) for v in converted[name]] == [type(v) for v in values], name
