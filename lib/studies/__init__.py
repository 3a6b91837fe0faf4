"""One subpackage per question of the report: manifold (the discriminating claims of notebooks 03-05 and their
replication, 09), curvature (06), defence (07), worlds (known manifolds, 08), training (10). Imports every package
above; nothing imports it but notebooks."""
