-- Where an application service's ephemeral and device list streams start: the heads when it is
-- registered, so that a new service gets what happens from then on and not the history. Its
-- Appservice object keeps its positions from there, in its own storage, beside its transactions.
ALTER TABLE appservices ADD COLUMN stream_positions TEXT;

CREATE TRIGGER appservices_stream_positions AFTER INSERT ON appservices
BEGIN
    UPDATE appservices SET stream_positions = json_object(
        'typing', (SELECT coalesce(max(stream_id), 0) FROM typing),
        'receipts', (SELECT coalesce(max(stream_id), 0) FROM receipts),
        'presence', (SELECT coalesce(max(stream_id), 0) FROM presence),
        'to_device', (SELECT coalesce(max(stream_id), 0) FROM to_device),
        'device_lists', (SELECT coalesce(max(stream_id), 0) FROM device_lists_stream))
    WHERE id = NEW.id;
END;
