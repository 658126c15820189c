package streamgate.delta;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.delta.standalone.DeltaLog;
import io.delta.standalone.Operation;
import io.delta.standalone.OptimisticTransaction;
import io.delta.standalone.actions.Action;
import io.delta.standalone.actions.AddFile;
import io.delta.standalone.actions.Metadata;
import io.delta.standalone.actions.RemoveFile;
import io.delta.standalone.actions.SetTransaction;
import io.delta.standalone.types.DoubleType;
import io.delta.standalone.types.IntegerType;
import io.delta.standalone.types.LongType;
import io.delta.standalone.types.StringType;
import io.delta.standalone.types.StructField;
import io.delta.standalone.types.StructType;
import io.delta.standalone.types.TimestampType;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.parquet.example.data.Group;
import org.apache.parquet.example.data.simple.SimpleGroupFactory;
import org.apache.parquet.hadoop.ParquetWriter;
import org.apache.parquet.hadoop.example.ExampleParquetWriter;
import org.apache.parquet.hadoop.metadata.CompressionCodecName;
import org.apache.parquet.schema.LogicalTypeAnnotation;
import org.apache.parquet.schema.MessageType;
import org.apache.parquet.schema.PrimitiveType.PrimitiveTypeName;
import org.apache.parquet.schema.Types;

/**
 * The harness's own test fixture, not a model of streamgate's writer: writes a sample Delta table
 * with Delta's Java library (delta-standalone) so DeltaRead can be checked before the product
 * writes any table. Prints a JSON manifest of what the table must read back as.
 *
 * <pre>DeltaWriteSample TABLE_URI</pre>
 *
 * The table (checkpointInterval 10, partitioned by dt, type) covers: 16 commits (0-15) so a
 * checkpoint is written at version 10 and commits follow it; a compaction commit (two removes +
 * one add, dataChange=false); a delete commit (one remove); txn actions of three app ids, one
 * last set before the checkpoint (3), two after it; files without stats; partition values with a space,
 * '+', '%', ':', '/', '=' and a non-ASCII letter, whose directory names are Hive-escaped and whose
 * add.path is URL-encoded, as Delta Spark writes them.
 */
public final class DeltaWriteSample {
  static final String BRONZE_APP = "streamgate-bronze";
  static final String SILVER_APP = "streamgate-silver";
  /** Set once, before the checkpoint: only the checkpoint still knows it once 0-9 are gone. */
  static final String GOLD_APP = "streamgate-gold";
  static final String TOPIC = "events";
  static final String[][] PARTITIONS = {
    {"2026-01-01", "login"},
    {"2026-01-01", "a b+c%d:e"},
    {"2026-01-02", "login"},
    {"2026-01-02", "50%/off=é"},
  };

  static final StructType SCHEMA = new StructType(new StructField[] {
    new StructField("event_id", new StringType(), false),
    new StructField("log_topic", new StringType(), false),
    new StructField("log_partition", new IntegerType(), false),
    new StructField("log_offset", new LongType(), false),
    new StructField("amount", new DoubleType(), true),
    new StructField("occurred_at", new TimestampType(), true),
    new StructField("dt", new StringType(), true),
    new StructField("type", new StringType(), true),
  });

  /** Data files hold the non-partition columns only (Delta's layout). */
  static final MessageType FILE_SCHEMA = Types.buildMessage()
      .required(PrimitiveTypeName.BINARY).as(LogicalTypeAnnotation.stringType()).named("event_id")
      .required(PrimitiveTypeName.BINARY).as(LogicalTypeAnnotation.stringType()).named("log_topic")
      .required(PrimitiveTypeName.INT32).named("log_partition")
      .required(PrimitiveTypeName.INT64).named("log_offset")
      .optional(PrimitiveTypeName.DOUBLE).named("amount")
      .optional(PrimitiveTypeName.INT64)
      .as(LogicalTypeAnnotation.timestampType(true, LogicalTypeAnnotation.TimeUnit.MICROS))
      .named("occurred_at")
      .named("spark_schema");

  private static final ObjectMapper STATS_JSON = new ObjectMapper();
  static final long BASE_MICROS = 1_767_225_600_000_000L; // 2026-01-01T00:00:00Z

  private final Configuration conf;
  private final Path table;
  private final DeltaLog log;
  /** decoded relative path -> [partition index, rows], the files a reader must see. */
  private final Map<String, long[]> live = new TreeMap<>();
  private final Map<String, Long> txn = new TreeMap<>();
  /** decoded relative path -> the log offsets of its rows. */
  private final Map<String, List<long[]>> offsetsByFile = new LinkedHashMap<>();
  private final List<long[]> compactedOffsets = new ArrayList<>();
  private long nextOffset = 0;
  private int nextFile = 0;

  DeltaWriteSample(Configuration conf, Path table) {
    this.conf = conf;
    this.table = table;
    this.log = DeltaLog.forTable(conf, table);
  }

  public static void main(String[] args) {
    PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), false, StandardCharsets.UTF_8);
    System.setOut(System.err);
    if (args.length != 1) {
      System.err.println("usage: DeltaWriteSample TABLE_URI");
      System.exit(2);
    }
    try {
      Configuration conf = Hadoop.configuration(Map.of());
      Path table = Hadoop.tablePath(args[0]);
      if (table.toUri().getScheme().equals("s3a")) S3Buckets.ensure(table.toUri().getHost());
      DeltaWriteSample sample = new DeltaWriteSample(conf, table);
      if (sample.log.tableExists()) throw new IllegalStateException("A Delta table already exists at " + table);
      ObjectNode manifest = sample.write();
      out.println(new ObjectMapper().writeValueAsString(manifest));
      out.flush();
      System.exit(0);
    } catch (Throwable t) {
      Errors.report("writing the sample table " + args[0], t);
      System.exit(1);
    }
  }

  ObjectNode write() throws Exception {
    Metadata metadata = Metadata.builder()
        .schema(SCHEMA)
        .partitionColumns(Arrays.asList("dt", "type"))
        .configuration(Map.of("delta.checkpointInterval", "10"))
        .build();
    // v0: create + first file.
    OptimisticTransaction t0 = log.startTransaction();
    t0.updateMetadata(metadata);
    t0.commit(List.of(newFile(0, 3, true)), new Operation(Operation.Name.CREATE_TABLE), "sample");
    // v1..v12: appends round-robin over the partitions, like a streaming writer; each carries the
    // writer's idempotency marker (txn) except every fourth, some files lack stats.
    for (int v = 1; v <= 12; v++) {
      List<Action> actions = new ArrayList<>();
      actions.add(newFile(v % PARTITIONS.length, 2 + v % 3, v % 5 != 0));
      if (v % 4 != 0) actions.add(setTxn(BRONZE_APP, v));
      if (v == 3) actions.add(setTxn(GOLD_APP, 3));
      commit(actions, Operation.Name.STREAMING_UPDATE);
    }
    // v13: compaction of the first two files of partition 0 into one (rows unchanged).
    List<String> p0 = filesOf(0);
    List<Action> compaction = new ArrayList<>();
    long merged = 0;
    for (String path : p0.subList(0, 2)) {
      merged += live.get(path)[1];
      compaction.add(remove(path, false));
    }
    compaction.add(newFileFromRemoved(0, merged));
    commit(compaction, Operation.Name.MANUAL_UPDATE);
    // v14: delete one file of the escaped partition (rows drop) + the silver job's marker.
    commit(List.of(remove(filesOf(1).get(0), true), setTxn(SILVER_APP, 7)), Operation.Name.DELETE);
    // v15: one more append after the checkpoint, in the most awkward partition.
    commit(List.of(newFile(3, 4, true), setTxn(BRONZE_APP, 15)), Operation.Name.STREAMING_UPDATE);
    return manifest();
  }

  private void commit(List<Action> actions, Operation.Name op) {
    log.startTransaction().commit(actions, new Operation(op), "sample");
  }

  private SetTransaction setTxn(String appId, long version) {
    txn.put(appId, version);
    return new SetTransaction(appId, version, Optional.of(System.currentTimeMillis()));
  }

  private List<String> filesOf(int partition) {
    List<String> paths = new ArrayList<>();
    live.forEach((path, info) -> { if (info[0] == partition) paths.add(path); });
    return paths;
  }

  private RemoveFile remove(String decodedPath, boolean dataChange) {
    long[] info = live.remove(decodedPath);
    // A compaction's removed rows come back in its new file; a delete's are gone for good.
    if (!dataChange) compactedOffsets.addAll(offsetsByFile.get(decodedPath));
    return new RemoveFile(encode(decodedPath), Optional.of(System.currentTimeMillis()), dataChange,
        false, partitionValues((int) info[0]), Optional.empty(), null);
  }

  /** The compacted file re-holds the removed rows: same offsets, so none is lost or doubled. */
  private AddFile newFileFromRemoved(int partition, long rows) throws Exception {
    return writeFile(partition, rows, true, false);
  }

  private AddFile newFile(int partition, long rows, boolean withStats) throws Exception {
    return writeFile(partition, rows, withStats, true);
  }

  private AddFile writeFile(int partition, long rows, boolean withStats, boolean dataChange)
      throws Exception {
    String dir = "dt=" + escapePathName(PARTITIONS[partition][0])
        + "/type=" + escapePathName(PARTITIONS[partition][1]);
    String decoded = dir + String.format("/part-%05d-sample.c000.snappy.parquet", nextFile++);
    Path file = new Path(table, decoded);
    SimpleGroupFactory groups = new SimpleGroupFactory(FILE_SCHEMA);
    List<long[]> offsets = new ArrayList<>();
    if (dataChange) {
      for (long i = 0; i < rows; i++) offsets.add(new long[] {nextOffset++});
    } else {
      offsets.addAll(compactedOffsets);
      compactedOffsets.clear();
      if (offsets.size() != rows) throw new IllegalStateException("compaction lost rows");
    }
    try (ParquetWriter<Group> writer = ExampleParquetWriter.builder(file)
        .withConf(conf)
        .withType(FILE_SCHEMA)
        .withCompressionCodec(CompressionCodecName.SNAPPY)
        .build()) {
      for (long[] o : offsets) {
        long offset = o[0];
        Group g = groups.newGroup()
            .append("event_id", "evt-" + offset)
            .append("log_topic", TOPIC)
            .append("log_partition", (int) (offset % 3))
            .append("log_offset", offset);
        if (offset % 4 != 3) g.append("amount", offset * 1.5); // some nulls
        g.append("occurred_at", BASE_MICROS + offset * 1_000_000L);
        writer.write(g);
      }
    }
    offsetsByFile.put(decoded, offsets);
    long size = FileSystem.get(file.toUri(), conf).getFileStatus(file).getLen();
    live.put(decoded, new long[] {partition, rows});
    // delta-standalone writes add.stats raw into the commit (@JsonRawValue), while the protocol
    // (and its own reader) want a JSON string holding the stats object: hand it that string.
    String stats = withStats ? STATS_JSON.writeValueAsString("{\"numRecords\":" + rows + "}") : null;
    return new AddFile(encode(decoded), partitionValues(partition), size, System.currentTimeMillis(),
        dataChange, stats, null);
  }

  private static Map<String, String> partitionValues(int partition) {
    Map<String, String> values = new LinkedHashMap<>();
    values.put("dt", PARTITIONS[partition][0]);
    values.put("type", PARTITIONS[partition][1]);
    return values;
  }

  /** A relative path as Delta stores it in add/remove: a URI reference, '%' and ' ' escaped. */
  static String encode(String decodedRelativePath) {
    try {
      return new URI(null, null, decodedRelativePath, null).toString();
    } catch (Exception e) {
      throw new IllegalArgumentException("encoding path \"" + decodedRelativePath + "\"", e);
    }
  }

  /** Hive/Spark partition directory escaping (ExternalCatalogUtils.escapePathName). */
  static String escapePathName(String value) {
    StringBuilder sb = new StringBuilder();
    for (char c : value.toCharArray()) {
      if (c < 0x20 || c == 0x7f || "\"#%'*/:=?\\{[]^".indexOf(c) >= 0) {
        sb.append(String.format("%%%02X", (int) c));
      } else {
        sb.append(c);
      }
    }
    return sb.toString();
  }

  private ObjectNode manifest() {
    JsonNodeFactory json = JsonNodeFactory.instance;
    ObjectNode m = json.objectNode();
    m.put("version", log.update().getVersion());
    m.put("checkpointVersion", 10);
    ArrayNode files = m.putArray("files");
    Map<String, Long> byPartition = new TreeMap<>();
    long rows = 0;
    for (Map.Entry<String, long[]> e : live.entrySet()) {
      int p = (int) e.getValue()[0];
      ObjectNode f = files.addObject();
      f.put("path", e.getKey());
      f.putObject("partitionValues").put("dt", PARTITIONS[p][0]).put("type", PARTITIONS[p][1]);
      f.put("rows", e.getValue()[1]);
      byPartition.merge("dt=" + PARTITIONS[p][0] + "/type=" + PARTITIONS[p][1], e.getValue()[1], Long::sum);
      rows += e.getValue()[1];
    }
    m.put("numFiles", live.size());
    m.put("rows", rows);
    ObjectNode bp = m.putObject("rowsByPartition");
    byPartition.forEach(bp::put);
    ObjectNode t = m.putObject("txn");
    txn.forEach(t::put);
    ArrayNode ids = m.putArray("eventIds");
    for (String path : live.keySet()) {
      for (long[] o : offsetsByFile.get(path)) ids.add("evt-" + o[0]);
    }
    return m;
  }
}
