from __future__ import annotations

from django.db import migrations

# The audit log is append-only: rows may be removed with their tenant (or by retention), but an
# entry is never rewritten. A trigger enforces it for every client, the admin and raw SQL alike.
# The one change allowed is the database nulling an actor link when that user or key is
# deleted (ON DELETE SET NULL); actor_label keeps who it was.
FORBID_UPDATE = """
CREATE OR REPLACE FUNCTION tenancy_auditlog_forbid_update() RETURNS trigger AS $$
BEGIN
    IF (to_jsonb(NEW) - 'actor_user_id' - 'actor_key_id') IS DISTINCT FROM
       (to_jsonb(OLD) - 'actor_user_id' - 'actor_key_id') THEN
        RAISE EXCEPTION 'tenancy_auditlog is append-only: entries cannot be updated';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER tenancy_auditlog_no_update
BEFORE UPDATE ON tenancy_auditlog
FOR EACH ROW EXECUTE FUNCTION tenancy_auditlog_forbid_update();
"""

ALLOW_UPDATE = """
DROP TRIGGER IF EXISTS tenancy_auditlog_no_update ON tenancy_auditlog;
DROP FUNCTION IF EXISTS tenancy_auditlog_forbid_update();
"""


class Migration(migrations.Migration):
    dependencies = [("tenancy", "0001_initial")]
    operations = [migrations.RunSQL(FORBID_UPDATE, ALLOW_UPDATE)]
