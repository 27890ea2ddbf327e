"""ExactTarget (legacy XML API): Tracking BulkAsync exports delivered as ZIP files over (S)FTP."""
