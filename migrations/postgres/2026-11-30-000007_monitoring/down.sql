DROP TABLE monitoring_samples;
