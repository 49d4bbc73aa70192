"""The local single-node stack (Kafka KRaft broker + Apicurio registry) for machines without Docker."""
