-- WhatsApp contacts keyed on a business-scoped user id (BSUID) kept their wa_id
-- only as contacts.phone ('+' and the wa_id). Replies must go to the phone
-- whenever it is known, and senders choose among a contact's identities: give
-- every such contact its wa_id as an identity too (new traffic does this itself).
-- An id already held by another contact stays with it.
INSERT INTO contact_identities (account_id, contact_id, channel_type, external_id, display)
SELECT c.account_id, c.id, 'whatsapp', substr(c.phone, 2), c.phone
FROM contacts c
WHERE c.phone ~ '^\+[0-9]+$'
  AND c.redacted_at IS NULL
  AND EXISTS (SELECT 1 FROM contact_identities i
              WHERE i.contact_id = c.id AND i.channel_type = 'whatsapp')
ORDER BY c.id
ON CONFLICT (account_id, channel_type, external_id) DO NOTHING;
