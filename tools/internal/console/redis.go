package console

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// RedisStats are counters from INFO stats and INFO clients.
type RedisStats struct {
	Commands    int64 // total_commands_processed
	Connections int64 // total_connections_received
	Clients     int64 // connected_clients, this INFO's own connection included
}

// ReadRedisStats reads addr's INFO.
func ReadRedisStats(addr string) (RedisStats, error) {
	info, err := RedisInfo(addr, "")
	if err != nil {
		return RedisStats{}, err
	}
	var s RedisStats
	for line := range strings.SplitSeq(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch k {
		case "total_commands_processed":
			s.Commands, _ = strconv.ParseInt(v, 10, 64)
		case "total_connections_received":
			s.Connections, _ = strconv.ParseInt(v, 10, 64)
		case "connected_clients":
			s.Clients, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return s, nil
}

// RedisInfo returns INFO section's text (every default section when
// section is ""). INFO answers with a bulk string, which
// testkit.RedisCommand does not read, so this sends it as an inline
// command and reads the bulk reply itself.
func RedisInfo(addr, section string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, strings.TrimSpace("INFO "+section)+"\r\n"); err != nil {
		return "", err
	}
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimRight(line, "\r\n"), "$"))
	if !strings.HasPrefix(line, "$") || err != nil || n < 0 {
		return "", fmt.Errorf("redis: INFO answered %q", line)
	}
	b := make([]byte, n+2)
	if _, err := io.ReadFull(br, b); err != nil {
		return "", err
	}
	return string(b[:n]), nil
}
