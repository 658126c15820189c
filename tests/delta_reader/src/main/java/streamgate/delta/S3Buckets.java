package streamgate.delta;

import com.amazonaws.ClientConfiguration;
import com.amazonaws.auth.AWSStaticCredentialsProvider;
import com.amazonaws.auth.BasicAWSCredentials;
import com.amazonaws.client.builder.AwsClientBuilder.EndpointConfiguration;
import com.amazonaws.services.s3.AmazonS3;
import com.amazonaws.services.s3.AmazonS3ClientBuilder;

/**
 * Creates the sample's bucket (DeltaWriteSample only): s3a writes objects but never makes
 * buckets. Same environment variables as {@link Hadoop}.
 */
final class S3Buckets {
  private S3Buckets() {}

  static void ensure(String bucket) {
    String endpoint = System.getenv("AWS_ENDPOINT_URL_S3");
    if (endpoint == null || endpoint.isEmpty()) endpoint = System.getenv("AWS_ENDPOINT_URL");
    if (endpoint == null || endpoint.isEmpty()) {
      throw new IllegalStateException("AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) is not set");
    }
    String region = System.getenv("AWS_REGION");
    AmazonS3 s3 = AmazonS3ClientBuilder.standard()
        .withEndpointConfiguration(new EndpointConfiguration(endpoint, region == null ? "us-east-1" : region))
        .withPathStyleAccessEnabled(true)
        .withClientConfiguration(new ClientConfiguration().withMaxErrorRetry(1))
        .withCredentials(new AWSStaticCredentialsProvider(new BasicAWSCredentials(
            System.getenv("AWS_ACCESS_KEY_ID"), System.getenv("AWS_SECRET_ACCESS_KEY"))))
        .build();
    try {
      if (!s3.doesBucketExistV2(bucket)) s3.createBucket(bucket);
    } finally {
      s3.shutdown();
    }
  }
}
