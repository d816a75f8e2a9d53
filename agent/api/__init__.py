"""HTTP layer: schemas, dependencies, middleware and one route module per resource."""
