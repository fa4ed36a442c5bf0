-- Run once by the mysql:8.4 image's entrypoint when the data directory is
-- new (conf/compose.yaml). The same users and databases as
-- tests/fixtures/db.sh makes on its throwaway MariaDB.
--
-- The tests create and drop tables and users of their own, and XA RECOVER
-- lists branches of every session only with XA_RECOVER_ADMIN (MySQL 8.0.19
-- and later; without it a session sees only its own). ALL PRIVILEGES granted
-- by root includes the dynamic privileges, XA_RECOVER_ADMIN among them; it is
-- granted by name as well so that the intent survives an edit of the first
-- grant.

CREATE USER IF NOT EXISTS 'xac'@'%' IDENTIFIED WITH mysql_native_password BY 'xacpw';
CREATE USER IF NOT EXISTS 'xac'@'localhost' IDENTIFIED WITH mysql_native_password BY 'xacpw';
GRANT ALL PRIVILEGES ON *.* TO 'xac'@'%' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO 'xac'@'localhost' WITH GRANT OPTION;
GRANT XA_RECOVER_ADMIN ON *.* TO 'xac'@'%';
GRANT XA_RECOVER_ADMIN ON *.* TO 'xac'@'localhost';
CREATE DATABASE IF NOT EXISTS xac_test;
CREATE DATABASE IF NOT EXISTS xac_test2;
