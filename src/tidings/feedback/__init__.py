"""What receivers say back, and what it does to a reader: the bounce score, suppressions for
bounces and complaints, unsubscribes, and the subscriber history that records each change
(undoable by an admin). Below `deliver/`, so the send-time classifier and later bounces share
one set of effects."""
