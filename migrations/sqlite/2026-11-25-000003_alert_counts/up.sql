-- Alert totals per (status, severity), kept in the same transactions that
-- create alerts and change their status, so that alertStats and the
-- alerts' totalCount cost twelve rows however many alerts there are.
CREATE TABLE alert_counts (
    status   TEXT NOT NULL,
    severity TEXT NOT NULL,
    count    BIGINT NOT NULL,
    PRIMARY KEY (status, severity)
);

INSERT INTO alert_counts (status, severity, count)
SELECT s.status, v.severity,
       (SELECT count(*) FROM alerts a WHERE a.status = s.status AND a.severity = v.severity)
FROM (SELECT 'OPEN' AS status UNION ALL SELECT 'ACKNOWLEDGED' UNION ALL SELECT 'RESOLVED') s
CROSS JOIN (SELECT 'LOW' AS severity UNION ALL SELECT 'MEDIUM'
            UNION ALL SELECT 'HIGH' UNION ALL SELECT 'CRITICAL') v;
